/**
 * Input views: the embedding gradient's indices come from the host, not from an int64 reshape: as int64 [B, T, 1] for
 * ScatterND (`orderedScatter: false`), as float32 [N, 1] for the ordered lowering (the default).
 */
import { expect, test } from 'bun:test';
import { valueAndGrad } from '../autodiff/vjp.ts';
import { compile } from '../compile.ts';
import { trace } from '../ir/graph.ts';
import { hostTensor } from '../ir/host.ts';
import * as op from '../ops/api.ts';
import { lowerGraph } from './lower.ts';
import { withInputViews } from './input-views.ts';

/** sum(table[ids] * weights) and its gradient with respect to the table (a ScatterND of the weights). */
const embeddingGrad = (idsDtype: 'int64' | 'int32') => valueAndGrad(trace((g) => {
  const table = g.input('table', 'float32', [5, 3]);
  const ids = g.input('ids', idsDtype, [2, 4]);
  const weights = g.input('weights', 'float32', [2, 4, 3]);
  return { loss: op.sum(op.mul(op.gather(table, ids), weights)) };
}), { of: 'loss', wrt: ['table'] });

const ID_VALUES = [0, 4, 4, 1, 2, -1, 3, 0];
const feeds = (idsDtype: 'int64' | 'int32') => ({
  table: hostTensor('float32', [5, 3], Array.from({ length: 15 }, (_, i) => i / 7)),
  ids: hostTensor(idsDtype, [2, 4], ID_VALUES),
  weights: hostTensor('float32', [2, 4, 3], Array.from({ length: 24 }, (_, i) => Math.sin(i))),
});

test('int64 ids fed at run time: ScatterND reads a host view [2, 4, 1] of them, with no Cast or Unsqueeze', () => {
  const { model } = lowerGraph(embeddingGrad('int64'), { orderedScatter: false });
  const view = model.inputs.find((i) => i.viewOf === 'ids');
  expect(view).toEqual({ name: 'ids:view[2,4,1]', dtype: 'int64', dims: [2, 4, 1], viewOf: 'ids' });
  const scatter = model.nodes.find((n) => n.op === 'ScatterND')!;
  expect(scatter.inputs[1]).toBe(view!.name);
  expect(model.nodes.map((n) => n.op)).not.toContain('Unsqueeze');
});

test('int32 ids, or resident ones, keep the in-graph Cast and Unsqueeze (no view) for ScatterND', () => {
  expect(lowerGraph(embeddingGrad('int32'), { orderedScatter: false }).model.inputs.some((i) => i.viewOf)).toBe(false);
  const resident = lowerGraph(embeddingGrad('int64'), { orderedScatter: false, resident: new Map([['ids', feeds('int64').ids]]) }).model;
  expect(resident.inputs.some((i) => i.viewOf)).toBe(false);
  expect(resident.nodes.map((n) => n.op)).toContain('Unsqueeze');
});

test('the ordered lowering reads the int64 ids as a float32 view [8, 1] the host converts: no int64 node', () => {
  const { model } = lowerGraph(embeddingGrad('int64'));
  expect(model.inputs.find((i) => i.viewOf === 'ids')).toEqual({ name: 'ids:view[8,1]:float32', dtype: 'float32', dims: [8, 1], viewOf: 'ids' });
  expect(model.nodes.map((n) => n.op)).not.toContain('ScatterND');
  const fed = withInputViews(model.inputs, feeds('int64'));
  expect([...fed['ids:view[8,1]:float32']!.data]).toEqual(ID_VALUES);
});

test('compile feeds the view itself: the gradient equals the in-graph path, negative ids included', async () => {
  const viaView = await compile(embeddingGrad('int64'));
  const inGraph = await compile(embeddingGrad('int32'));
  const a = await viaView.run(feeds('int64')), b = await inGraph.run(feeds('int32'));
  expect(Array.from(a['grad:table']!.data as Float32Array)).toEqual(Array.from(b['grad:table']!.data as Float32Array));
  expect(a['grad:table']!.data.some((x) => x !== 0)).toBe(true);
  // The caller is asked for the real inputs only; a view is never "missing".
  await expect(viaView.run({ table: feeds('int64').table, weights: feeds('int64').weights })).rejects.toThrow(/missing input 'ids' \(int64\[2,4\]\)$/);
  await Promise.all([viaView.release(), inGraph.release()]);
});

test('withInputViews shares the source buffer, keeps a view fed explicitly, and refuses a size mismatch', () => {
  const inputs = [{ name: 'ids', dtype: 'int64' as const, dims: [2, 4] }, { name: 'ids:view[2,4,1]', dtype: 'int64' as const, dims: [2, 4, 1], viewOf: 'ids' }];
  const ids = feeds('int64').ids;
  const out = withInputViews(inputs, { ids });
  expect(out['ids:view[2,4,1]']!.shape).toEqual([2, 4, 1]);
  expect(out['ids:view[2,4,1]']!.data).toBe(ids.data);
  const given = hostTensor('int64', [2, 4, 1], ID_VALUES);
  expect(withInputViews(inputs, { ids, 'ids:view[2,4,1]': given })['ids:view[2,4,1]']).toBe(given);
  expect(() => withInputViews(inputs, { ids: hostTensor('int64', [3], [0, 1, 2]) })).toThrow("input 'ids' has 3 elements; its view 'ids:view[2,4,1]' needs [2,4,1]");
});

test("an executable's inputs are what the caller feeds: filling them from a table never meets a view", async () => {
  const exe = await compile(embeddingGrad('int64'));
  expect(exe.inputs.map((i) => i.name)).toEqual(['table', 'ids', 'weights']);
  const table = new Map(Object.entries(feeds('int64')));
  const out = await exe.run(Object.fromEntries(exe.inputs.map((i) => [i.name, table.get(i.name)!])));
  expect(out['grad:table']!.shape).toEqual([5, 3]);
  await exe.release();
});
