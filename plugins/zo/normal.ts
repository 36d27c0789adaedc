import { seededRandom } from '../../core/index.ts';

/**
 * Reproducible standard-normal streams: the perturbation z of zeroth-order methods is regenerated from its seed
 * every time it is needed (the MeZO trick), so it is never stored.
 */

/** Calls `visit(z)` for n successive N(0, 1) draws of the stream `seed` (mulberry32 + Box-Muller, in pairs). */
export function forEachNormal(seed: number, n: number, visit: (z: number, i: number) => void): void {
  const random = seededRandom(seed);
  const uniform = () => 1 - random(); // (0, 1]: log stays finite
  for (let i = 0; i < n; i += 2) {
    const r = Math.sqrt(-2 * Math.log(uniform()));
    const theta = 2 * Math.PI * uniform();
    visit(r * Math.cos(theta), i);
    if (i + 1 < n) visit(r * Math.sin(theta), i + 1);
  }
}

/**
 * One stream spanning several tensors in a fixed order: `fn(data, offset-in-stream)` per tensor. Each tensor gets its
 * own sub-seed (seed mixed with its index) so tensors can be visited independently and in any order.
 */
export function tensorSeed(seed: number, index: number): number {
  let h = (seed ^ Math.imul(index + 1, 0x9e3779b1)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b) >>> 0;
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35) >>> 0;
  return (h ^ (h >>> 16)) >>> 0;
}

/** data[i] += scale * z_i for the stream of tensor `index` under `seed`. */
export function addScaledNormal(data: Float32Array, seed: number, index: number, scale: number): void {
  forEachNormal(tensorSeed(seed, index), data.length, (z, i) => {
    data[i] = data[i]! + scale * z;
  });
}
