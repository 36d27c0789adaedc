/**
 * The update rules of the zeroth-order family, applied in place with z regenerated from each query's seed.
 * `g[q]` is the projected gradient (directional derivative estimate) of query q; the gradient estimate is
 * (1/Q) Σ g[q] z[q].
 */
import { forEachNormal, tensorSeed } from './normal.ts';
import type { ZoConfig } from './config.ts';

export interface ZoState {
  step: number;
  /** mmt: momentum buffer; adam: first moments. */
  m?: Map<string, Float32Array>;
  /** adam: second moments. */
  v?: Map<string, Float32Array>;
}

export interface Query {
  seed: number;
  g: number;
}

function buffer(map: Map<string, Float32Array>, name: string, n: number): Float32Array {
  let b = map.get(name);
  if (!b) map.set(name, (b = new Float32Array(n)));
  return b;
}

/** θ ← θ − lr · step(g, z) for every trainable tensor, per the variant. */
export function applyUpdate(cfg: ZoConfig, state: ZoState, params: readonly { name: string; data: Float32Array }[], queries: readonly Query[], lr: number): void {
  const Q = queries.length;
  state.step++;
  params.forEach(({ name, data }, index) => {
    if (cfg.variant === 'sgd' || cfg.variant === 'sign' || cfg.variant === 'cons') {
      for (const q of queries) {
        const coef = (cfg.variant === 'sign' ? Math.sign(q.g) : q.g) / Q;
        forEachNormal(tensorSeed(q.seed, index), data.length, (z, i) => {
          data[i] = data[i]! - lr * coef * z;
        });
      }
      return;
    }
    // mmt and adam need the averaged gradient estimate per element: accumulate it in a scratch buffer.
    const grad = new Float32Array(data.length);
    for (const q of queries) forEachNormal(tensorSeed(q.seed, index), data.length, (z, i) => { grad[i] = grad[i]! + (q.g / Q) * z; });
    if (cfg.variant === 'mmt') {
      const m = buffer((state.m ??= new Map()), name, data.length);
      for (let i = 0; i < data.length; i++) {
        m[i] = cfg.momentum * m[i]! + grad[i]!;
        data[i] = data[i]! - lr * m[i]!;
      }
      return;
    }
    const m = buffer((state.m ??= new Map()), name, data.length);
    const v = buffer((state.v ??= new Map()), name, data.length);
    const c1 = 1 / (1 - cfg.beta1 ** state.step), c2 = 1 / (1 - cfg.beta2 ** state.step);
    for (let i = 0; i < data.length; i++) {
      const gi = grad[i]!;
      m[i] = cfg.beta1 * m[i]! + (1 - cfg.beta1) * gi;
      v[i] = cfg.beta2 * v[i]! + (1 - cfg.beta2) * gi * gi;
      data[i] = data[i]! - (lr * m[i]! * c1) / (Math.sqrt(v[i]! * c2) + cfg.adamEps);
    }
  });
}

/** θ ← θ + scale · z(seed) for every trainable tensor. */
export function perturb(params: readonly { data: Float32Array }[], seed: number, scale: number): void {
  params.forEach(({ data }, index) => {
    forEachNormal(tensorSeed(seed, index), data.length, (z, i) => {
      data[i] = data[i]! + scale * z;
    });
  });
}
