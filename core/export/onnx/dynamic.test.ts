/**
 * Lowering with free axes, without a model: one ONNX model runs at several sizes and equals the graph compiled at
 * each size; the symbolic dims become dim_params; what has no runtime form is refused.
 */
import { expect, test } from 'bun:test';
import * as ort from 'onnxruntime-node';
import { compile } from '../../compile.ts';
import { trace } from '../../ir/graph.ts';
import { encodeModel } from '../../onnx/model.ts';
import * as op from '../../ops/api.ts';
import { lowerDynamic } from './dynamic.ts';

/** Reshapes over a product, a slice at a symbolic offset, a float ramp and a concat of P and T rows. */
const graph = trace((g) => {
  const x = g.input('x', 'float32', ['B', 'T', 3]);
  const past = g.input('past', 'float32', ['B', 'P', 3]);
  const w = g.input('w', 'float32', [3, 3]);
  const flat = op.matmul(op.reshape(x, [op.mulDims('B', 'T'), 3]), w); // [B*T, 3]
  const all = op.concat([past, op.reshape(flat, ['B', 'T', 3])], 1); // [B, P+T, 3]
  const ramp = op.slice(op.iota(x, [op.addDims('P', 'T')], 0, 'float32'), 0, 'P', op.addDims('P', 'T')); // P .. P+T-1
  const shifted = op.add(op.slice(all, 1, 'P', op.addDims('P', 'T')), op.reshape(ramp, [1, 'T', 1]));
  return { all, shifted: op.broadcastTo(shifted, ['B', 'T', 3]) };
});

test('one model, several sizes: equal to the graph compiled at each size; dims named as asked', async () => {
  const w = { dtype: 'float32' as const, shape: [3, 3], data: Float32Array.from({ length: 9 }, (_, i) => (i % 4) - 1.5) };
  const model = lowerDynamic(graph, { resident: new Map([['w', w]]), dimNames: { B: 'batch', T: 'seq', P: 'past' } });
  expect(model.inputs.map((i) => i.dimParams)).toEqual([['batch', 'seq', null], ['batch', 'past', null]]);
  expect(model.outputs.map((o) => o.dimParams)).toEqual([['batch', 'past+seq', null], ['batch', 'seq', null]]);
  const session = await ort.InferenceSession.create(encodeModel(model));
  try {
    for (const [B, T, P] of [[1, 4, 0], [2, 1, 5], [3, 2, 2]] as const) {
      const x = Float32Array.from({ length: B * T * 3 }, (_, i) => Math.sin(i + T));
      const past = Float32Array.from({ length: B * P * 3 }, (_, i) => Math.cos(i));
      const got = await session.run({ x: new ort.Tensor('float32', x, [B, T, 3]), past: new ort.Tensor('float32', past, [B, P, 3]) });
      const exe = await compile(graph, { dims: { B, T, P }, resident: { w } });
      const want = await exe.run({ x: { dtype: 'float32', shape: [B, T, 3], data: x }, past: { dtype: 'float32', shape: [B, P, 3], data: past } });
      await exe.release();
      for (const name of ['all', 'shifted']) {
        expect(got[name]!.dims).toEqual(want[name]!.shape);
        expect(Array.from(got[name]!.data as Float32Array)).toEqual(Array.from(want[name]!.data as Float32Array));
      }
    }
  } finally {
    await session.release();
  }
});

test('refused: a mean over a free axis (its 1/n would be baked in), and a symbol no input axis carries', () => {
  const mean = trace((g) => ({ m: op.mean(g.input('x', 'float32', ['B', 4]), 0) }));
  expect(() => lowerDynamic(mean, { resident: new Map(), dimNames: {} })).toThrow(/divided by the symbolic dim 'B'/);
  const hidden = trace((g) => ({ y: op.iota(g.input('x', 'float32', ['N']), ['M'], 0, 'float32') }));
  expect(() => lowerDynamic(hidden, { resident: new Map(), dimNames: {} })).toThrow(/no input has an axis of size M/);
});
