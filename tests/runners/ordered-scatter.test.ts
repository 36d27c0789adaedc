/**
 * compile's `orderedScatter` (the default; train.deterministic): the embedding gradient as one-hot matrix products
 * instead of ScatterND. On the CPU it agrees with ScatterND to float32 rounding where ScatterND is right (a scatter
 * too small for its threads), with exact zeros in rows no index names, from fed ids (a float32 input view the host
 * converts) and from resident ones (cast in the graph); at SmolLM2-135M's embedding size, where ScatterND's threads
 * race, it equals a sequential sum run after run; on WebGPU (lavapipe in CI) every run gives the same bits and every
 * node runs on the device.
 */
import { describe, expect, test } from 'bun:test';
import { valueAndGrad } from '../../core/autodiff/vjp.ts';
import { compile } from '../../core/compile.ts';
import { trace } from '../../core/ir/graph.ts';
import { hostTensor, type HostTensor } from '../../core/ir/host.ts';
import * as op from '../../core/ops/api.ts';
import { maxRelError } from '../../runners/conformance.ts';
import type { NodePlacement } from '../../runners/ort-node-placement.ts';
import { ortNodeRunner } from '../../runners/ort-node.ts';
import { probeProvider } from '../../runners/sidecar-providers.ts';

// N = 384 ids into 50,000 rows: a one-hot block holds 2^24 elements, 43,690 rows of 384, so the table takes 2 blocks.
const [V, D, B, T] = [50_000, 8, 4, 96];
/** loss = sum(gather(table, ids) · c); its gradient in the table is the scatter-add of c's rows at ids. */
const graph = valueAndGrad(trace((g) => {
  const table = g.input('table', 'float32', [V, D]), ids = g.input('ids', 'int64', [B, T]), c = g.input('c', 'float32', [B, T, D]);
  return { loss: op.sum(op.mul(op.gather(table, ids), c)) };
}), { of: 'loss', wrt: ['table'] });

let seed = 11;
const rand = () => ((seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) / 2 ** 32);
// 40 distinct ids, k · 1,150 (0 ... 44,850: both blocks), each repeated ~10 times (the order-sensitive case); the
// other rows get no update and must stay exact zeros.
const ID_ROWS = Array.from({ length: 40 }, (_, k) => k * 1150);
const feeds: Record<string, HostTensor> = {
  table: hostTensor('float32', [V, D], Float32Array.from({ length: V * D }, rand)),
  ids: hostTensor('int64', [B, T], BigInt64Array.from({ length: B * T }, () => BigInt(ID_ROWS[Math.floor(rand() * ID_ROWS.length)]!))),
  c: hostTensor('float32', [B, T, D], Float32Array.from({ length: B * T * D }, () => rand() - 0.5)),
};
const gradOf = async (opts: Parameters<typeof compile>[1], f = feeds) => {
  const exe = await compile(graph, opts);
  try {
    return (await exe.run(f))['grad:table']!;
  } finally {
    await exe.release();
  }
};

describe('the ordered embedding gradient on the CPU', () => {
  test('agrees with ScatterND to float32 rounding over two one-hot blocks; rows no id names are exact zeros; fed ids come as a float32 view', async () => {
    const reference = await gradOf({ orderedScatter: false });
    const exe = await compile(graph);
    expect(exe.inputs.map((i) => i.name)).toEqual(['table', 'ids', 'c']); // the view is the executable's to feed
    const ordered = (await exe.run(feeds))['grad:table']!;
    await exe.release();
    const err = maxRelError(ordered, reference);
    console.log(`ordered vs ScatterND on the CPU: ${err.toExponential(2)} relative`);
    expect(err).toBeLessThan(1e-6);
    expect(err).toBeGreaterThanOrEqual(0);
    const data = ordered.data as Float32Array, named = new Set(ID_ROWS);
    for (let row = 0; row < V; row++) {
      const r = data.subarray(row * D, (row + 1) * D);
      if (named.has(row)) expect(r.some((x) => x !== 0)).toBe(true);
      else if (!r.every((x) => Object.is(x, 0))) throw new Error(`row ${row}, named by no id, is not exact +0: ${[...r]}`);
    }
  });

  test('with the ids resident (baked into the model) the graph casts them itself, to the same bits', async () => {
    const fed = await gradOf({});
    const { ids, ...rest } = feeds;
    const baked = await gradOf({ resident: { ids: ids! } }, rest);
    expect(Buffer.from((baked.data as Float32Array).buffer).equals(Buffer.from((fed.data as Float32Array).buffer))).toBe(true);
  });
});

test("at SmolLM2-135M's embedding size (1,024 ids into 49,152 x 576), three runs equal a sequential float32 sum", async () => {
  const [Vb, Db, Nb] = [49_152, 576, 1024];
  const big = valueAndGrad(trace((g) => {
    const table = g.input('table', 'float32', [Vb, Db]), ids = g.input('ids', 'int64', [Nb]), c = g.input('c', 'float32', [Nb, Db]);
    return { loss: op.sum(op.mul(op.gather(table, ids), c)) };
  }), { of: 'loss', wrt: ['table'] });
  const ids = BigInt64Array.from({ length: Nb }, () => BigInt(Math.floor(rand() * 300))); // ~3.4 repeats per id
  const c = Float32Array.from({ length: Nb * Db }, () => rand() - 0.5);
  const sequential = new Float32Array(Vb * Db);
  for (let n = 0; n < Nb; n++) for (let d = 0; d < Db; d++) sequential[Number(ids[n]) * Db + d]! += c[n * Db + d]!;
  const exe = await compile(big);
  const f = { table: hostTensor('float32', [Vb, Db]), ids: hostTensor('int64', [Nb], ids), c: hostTensor('float32', [Nb, Db], c) };
  for (let k = 0; k < 3; k++) {
    const got = (await exe.run(f))['grad:table']!.data as Float32Array;
    let worst = 0;
    for (let j = 0; j < got.length; j++) worst = Math.max(worst, Math.abs(got[j]! - sequential[j]!));
    expect(worst).toBeLessThan(1e-5); // a lost update (ScatterND's race) is off by ~0.5
  }
  await exe.release();
}, 60_000);

const why = await probeProvider('webgpu').then(() => undefined, (e: Error) => e.message.split('\n')[0]);
if (why) console.warn(`skipping the ordered-scatter WebGPU test: ${why} (Debian: bash .ci/lavapipe.sh installs a software Vulkan driver)`);

describe.skipIf(why !== undefined)('the ordered embedding gradient on WebGPU', () => {
  test('four runs give the same bits, within float32 rounding of the CPU, every node on the device', async () => {
    const placements: NodePlacement[] = [];
    const exe = await compile(graph, { runner: ortNodeRunner({ provider: 'webgpu', onPlacement: (p) => placements.push(p) }) });
    const runs: Float32Array[] = [];
    for (let k = 0; k < 4; k++) runs.push((await exe.run(feeds))['grad:table']!.data as Float32Array);
    await exe.release();
    const first = Buffer.from(runs[0]!.buffer);
    expect(runs.filter((r) => !Buffer.from(r.buffer).equals(first))).toHaveLength(0);
    expect(maxRelError({ dtype: 'float32', shape: [V, D], data: runs[0]! }, await gradOf({ orderedScatter: false }))).toBeLessThan(1e-6);
    expect(placements[0]!.cpuNodes).toEqual([]);
  });
});
