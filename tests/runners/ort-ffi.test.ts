/**
 * The C API path (runners/ort-ffi.ts) against onnxruntime-node's binding: the same library, so the same bits, for
 * every dtype a step feeds or returns; outputs written into their final arrays; errors that say what failed.
 */
import { describe, expect, test } from 'bun:test';
import { readdirSync, rmSync } from 'node:fs';
import { dirname } from 'node:path';
import { compile } from '../../core/compile.ts';
import { trace } from '../../core/ir/graph.ts';
import { hostTensor, type HostTensor } from '../../core/ir/host.ts';
import { lowerGraph } from '../../core/onnx/lower.ts';
import { encodeModel } from '../../core/onnx/model.ts';
import { withExternalData } from '../../core/onnx/external-data.ts';
import * as op from '../../core/ops/api.ts';
import { ortFfiUnavailable } from '../../runners/ort-ffi.ts';
import { ortNodeRunner } from '../../runners/ort-node.ts';
import type { CompiledStep } from '../../runners/types.ts';

const why = await ortFfiUnavailable();
if (why) console.warn(`skipping the C API tests: ${why}`);

const cApi = ortNodeRunner({ binding: 'c-api' }), node = ortNodeRunner({ binding: 'node' });

/** Outputs of several dtypes and ranks, an empty one, and one computed from an int64 input. */
const graph = () => trace((b) => {
  const x = b.input('x', 'float32', [2, 3]);
  const ids = b.input('ids', 'int64', [4]);
  const h = b.input('h', 'float16', [3]);
  return {
    y: op.add(op.mul(op.exp(x), 2), 1), // [2, 3]
    total: op.sum(x), // []
    positive: op.less(0, x), // bool [2, 3]
    twice: op.mul(ids, 2), // int64 [4]
    half: op.mul(h, 2), // float16 [3]
    none: op.slice(x, 1, 0, 0), // [2, 0]
  };
});

function stepOf(g: ReturnType<typeof graph>): CompiledStep {
  const { model, origins } = lowerGraph(g);
  return { model: { bytes: encodeModel(model) }, inputs: model.inputs, outputs: model.outputs, origins };
}

const feeds = (): Record<string, HostTensor> => ({
  x: hostTensor('float32', [2, 3], [-1.5, 0, 0.25, 1, 2, -3]),
  ids: { dtype: 'int64', shape: [4], data: BigInt64Array.from([0n, 1n, -7n, 2n ** 40n]) },
  h: { dtype: 'float16', shape: [3], data: Uint16Array.from([0x3c00, 0x4000, 0xbc00]) }, // 1, 2, -1
});

const bits = (t: HostTensor) => ({ dtype: t.dtype, shape: t.shape, bytes: [...new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength)] });

describe.skipIf(why !== undefined)('onnxruntime through its C API (bun:ffi)', () => {
  test('every output equals the binding\'s, bit for bit, with its dtype and shape', async () => {
    const step = stepOf(graph());
    const [a, b] = await Promise.all([cApi.load(step), node.load(step)]);
    const [ra, rb] = [await a.run(feeds()), await b.run(feeds())];
    expect(Object.keys(ra).sort()).toEqual(Object.keys(rb).sort());
    for (const name of Object.keys(rb)) expect(bits(ra[name]!)).toEqual(bits(rb[name]!));
    expect(ra.total!.shape).toEqual([]);
    expect(ra.none!.shape).toEqual([2, 0]);
    expect([...ra.twice!.data as BigInt64Array]).toEqual([0n, 2n, -14n, 2n ** 41n]);
    await a.release();
    await b.release();
  });

  test('an output given in `into` is written there and returned as given; views are read and written at their offset', async () => {
    const step = stepOf(graph());
    const s = await cApi.load(step);
    const big = new Float32Array(20).fill(9);
    const x = new Float32Array(20);
    x.set(feeds().x!.data as Float32Array, 7);
    const target: HostTensor = { dtype: 'float32', shape: [2, 3], data: big.subarray(10, 16) };
    const out = await s.run({ ...feeds(), x: { dtype: 'float32', shape: [2, 3], data: x.subarray(7, 13) } }, { into: { y: target } });
    expect(out.y).toBe(target);
    const expected = (await (await node.load(step)).run(feeds())).y!.data as Float32Array;
    expect([...target.data as Float32Array]).toEqual([...expected]);
    expect([...big.subarray(0, 10), ...big.subarray(16)]).toEqual(Array(14).fill(9));
    await s.release();
  });

  test('in place: an output written over the array of the input it replaces', async () => {
    const exe = await compile(trace((b) => { const v = b.input('v', 'float32', [5]); return { next: op.add(op.mul(v, 0.5), 1) }; }), { runner: cApi });
    const v = Float32Array.from([2, 4, 6, 8, 10]);
    for (let k = 0; k < 3; k++) await exe.run({ v: { dtype: 'float32', shape: [5], data: v } }, { into: { next: { dtype: 'float32', shape: [5], data: v } } });
    expect([...v]).toEqual([2, 4, 6, 8, 10].map((x) => ((x * 0.5 + 1) * 0.5 + 1) * 0.5 + 1));
    await exe.release();
  });

  test('a model with its weights in an external data file loads from its path', async () => {
    const n = 512; // initializers of 1 KiB and more go to the external file
    const w = hostTensor('float32', [n], Array.from({ length: n }, (_, i) => i));
    const { model, origins } = lowerGraph(trace((b) => ({ y: op.mul(b.input('x', 'float32', [n]), b.input('w', 'float32', [n])) })), { resident: new Map([['w', w]]) });
    const external = withExternalData(model);
    try {
      expect(readdirSync(dirname(external.path))).toContain('weights.bin');
      const s = await cApi.load({ model: external, inputs: model.inputs, outputs: model.outputs, origins });
      const out = await s.run({ x: hostTensor('float32', [n], Array(n).fill(2)) });
      expect([...out.y!.data as Float32Array]).toEqual(Array.from({ length: n }, (_, i) => 2 * i));
      await s.release();
    } finally {
      rmSync(dirname(external.path), { recursive: true, force: true });
    }
  });

  test('refused, with what failed: bytes that are no model, a missing input, a wrong shape, a released session', async () => {
    const step = stepOf(graph());
    await expect(cApi.load({ ...step, model: { bytes: Uint8Array.from([1, 2, 3]) } })).rejects.toThrow(/onnxruntime failed to load the compiled graph/);
    const s = await cApi.load(step);
    const { ids: _ids, ...partial } = feeds();
    await expect(s.run(partial)).rejects.toThrow(/input 'ids' was not fed/);
    await expect(s.run({ ...feeds(), x: hostTensor('float32', [3, 2], [1, 2, 3, 4, 5, 6]) })).rejects.toThrow(/onnxruntime failed to run the compiled graph: .*x/s);
    expect(Object.keys(await s.run(feeds()))).toContain('y'); // a failed run leaves the session usable
    await s.release();
    await expect(s.run(feeds())).rejects.toThrow(/released session/);
  });

  test('binding \'c-api\' is the default under Bun; TUNEFORGE_ORT_BINDING picks, and a bad value is refused', async () => {
    const step = stepOf(graph());
    const prior = process.env.TUNEFORGE_ORT_BINDING;
    try {
      process.env.TUNEFORGE_ORT_BINDING = 'napi';
      await expect(ortNodeRunner().load(step)).rejects.toThrow(/TUNEFORGE_ORT_BINDING: c-api or node, got 'napi'/);
      process.env.TUNEFORGE_ORT_BINDING = 'node';
      const s = await ortNodeRunner().load(step);
      expect((s as { via?: string }).via).toBeUndefined(); // the binding's session
      await s.release();
    } finally {
      if (prior === undefined) delete process.env.TUNEFORGE_ORT_BINDING;
      else process.env.TUNEFORGE_ORT_BINDING = prior;
    }
    const s = await ortNodeRunner().load(step);
    expect((s as { via?: string }).via).toBe('c-api');
    await s.release();
  });
});
