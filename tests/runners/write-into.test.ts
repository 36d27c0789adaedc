/**
 * `run(feeds, { into })`: outputs written into the caller's tensors. onnxruntime-node writes there itself
 * (pre-allocated outputs), in place over an input's array when the graph allows it and into a view of a larger
 * array; other runners' outputs are copied there by `compile`'s `run`; a held output is never written out.
 */
import { expect, test } from 'bun:test';
import { compile } from '../../core/compile.ts';
import { trace } from '../../core/ir/graph.ts';
import { hostTensor, type HostTensor } from '../../core/ir/host.ts';
import { lowerGraph } from '../../core/onnx/lower.ts';
import { encodeModel } from '../../core/onnx/model.ts';
import * as op from '../../core/ops/api.ts';
import { ortNodeRunner } from '../../runners/ort-node.ts';
import type { Runner } from '../../runners/types.ts';

const N = 6;
/** y = 2x + 1 and z = sum(x), both read x before y is written: y may go over x's array. */
const graph = () => trace((b) => {
  const x = b.input('x', 'float32', [N]);
  return { y: op.add(op.mul(x, 2), 1), z: op.sum(x) };
});
const f32 = (data: Float32Array): HostTensor => ({ dtype: 'float32', shape: [data.length], data });
const X = Float32Array.from({ length: N }, (_, i) => i - 2);
const Y = X.map((x) => 2 * x + 1);

test('onnxruntime-node writes an output into the given array, itself (no copy by compile)', async () => {
  const { model } = lowerGraph(graph());
  const session = await ortNodeRunner().load({ model: { bytes: encodeModel(model) }, inputs: model.inputs, outputs: model.outputs, origins: new Map() });
  const target = f32(new Float32Array(N));
  const out = await session.run({ x: f32(X.slice()) }, { into: { y: target } });
  expect(out.y).toBe(target);
  expect([...target.data as Float32Array]).toEqual([...Y]);
  expect(Number(out.z!.data[0])).toBe(X.reduce((a, b) => a + b, 0)); // the other outputs come back as usual
  await session.release();
});

test('in place over the input, and into views of larger arrays (their neighbours untouched)', async () => {
  const exe = await compile(graph());
  const x = X.slice();
  await exe.run({ x: f32(x) }, { into: { y: f32(x) } });
  expect([...x]).toEqual([...Y]);
  const big = new Float32Array(3 * N).fill(7), input = new Float32Array(3 * N);
  input.set(X, N);
  const view = big.subarray(N, 2 * N);
  await exe.run({ x: f32(input.subarray(N, 2 * N)) }, { into: { y: f32(view) } });
  expect([...big.subarray(0, N)]).toEqual(Array(N).fill(7));
  expect([...view]).toEqual([...Y]);
  expect([...big.subarray(2 * N)]).toEqual(Array(N).fill(7));
  await exe.release();
});

test('a runner that returns its own outputs: compile copies them into the given arrays', async () => {
  const base = ortNodeRunner();
  const copying: Runner = { name: 'returns its own', load: async (step) => {
    const s = await base.load(step);
    return { run: (feeds) => s.run(feeds), release: () => s.release() }; // drops `into`
  } };
  const exe = await compile(graph(), { runner: copying });
  const target = f32(new Float32Array(N));
  const out = await exe.run({ x: f32(X.slice()) }, { into: { y: target } });
  expect(out.y).toBe(target);
  expect([...target.data as Float32Array]).toEqual([...Y]);
  await exe.release();
});

test('a held output is kept by the session, not written into the caller array', async () => {
  const exe = await compile(trace((b) => {
    const s = b.input('s', 'float32', [N]);
    return { next: op.add(s, 1), copy: op.mul(s, 1) };
  }), { feedback: { next: 's' } });
  const target = f32(new Float32Array(N)), copy = f32(new Float32Array(N));
  await exe.run({ s: f32(new Float32Array(N)) }, { into: { next: target, copy } });
  expect([...target.data as Float32Array]).toEqual(Array(N).fill(0));
  await exe.run({}, { into: { copy } });
  expect([...copy.data as Float32Array]).toEqual(Array(N).fill(1));
  expect([...(await exe.readHeld!('s')).data as Float32Array]).toEqual(Array(N).fill(2));
  await exe.release();
});

test('refused: an into that names no output, or does not fit it', async () => {
  const exe = await compile(graph());
  const feeds = { x: f32(X.slice()) };
  await expect(exe.run(feeds, { into: { w: f32(new Float32Array(N)) } })).rejects.toThrow("'w' is not an output (outputs: y, z)");
  await expect(exe.run(feeds, { into: { y: f32(new Float32Array(N + 1)) } })).rejects.toThrow("'y' is float32[6], cannot be written into float32[7]");
  await expect(exe.run(feeds, { into: { y: hostTensor('int32', [N], new Array(N).fill(0)) } })).rejects.toThrow('cannot be written into int32[6]');
  await exe.release();
});
