/**
 * Indexing primitives. `gather` picks rows (embedding lookup), `take_along_axis` picks one element per position
 * (the label's logit); each has a scatter-add partner that is its transpose.
 */
import type { Eqn, Tensor } from '../ir/graph.ts';
import type { LowerCtx } from '../ir/primitive.ts';
import { definePrimitive } from '../ir/primitive.ts';
import { dimEq, formatShape, shapeEq } from '../ir/shape.ts';
import * as op from './api.ts';
import { bytesOf, castCode, count, requireArity, requireInt, streamingCost } from './util.ts';

type NoParams = Record<string, never>;

/** gather(table [V, ...rest], idx [...I]) -> [...I, ...rest]: rows of `table` along axis 0. */
export const gather = definePrimitive<NoParams>({
  name: 'gather',
  infer: (types) => {
    requireArity(types, 2);
    const [table, idx] = [types[0]!, types[1]!];
    requireInt(idx);
    if (table.shape.length < 1) throw new Error('table must have rank >= 1');
    return { dtype: table.dtype, shape: [...idx.shape, ...table.shape.slice(1)] };
  },
  lower: (ctx) => ctx.node('Gather', ctx.inputs, [ctx.out], { axis: 0 }),
  jvp: ({ primals: [, idx], tangents: [t] }) => op.gather(t!, idx!),
  vjp: ({ primals: [table, idx], ct }) => [op.scatterAddRows(op.zerosLike(table!), idx!, ct), null],
  cost: (eqn) => ({ flops: 0, bytes: 2 * bytesOf(eqn.out) + bytesOf(eqn.inputs[1]!) }),
});

/** scatter_add_rows(base [V, ...rest], idx [...I], updates [...I, ...rest]): base with updates added to rows idx. */
export const scatterAddRows = definePrimitive<NoParams>({
  name: 'scatter_add_rows',
  infer: (types) => {
    requireArity(types, 3);
    const [base, idx, upd] = [types[0]!, types[1]!, types[2]!];
    requireInt(idx);
    const expected = [...idx.shape, ...base.shape.slice(1)];
    if (!shapeEq(upd.shape, expected) || upd.dtype !== base.dtype) {
      throw new Error(`updates must be ${base.dtype}${formatShape(expected)}, got ${upd.dtype}${formatShape(upd.shape)}`);
    }
    return base;
  },
  lower: (ctx, eqn) => {
    if (ctx.orderedScatter) return lowerOrderedScatterRows(ctx, eqn);
    // ScatterND wants int64 indices [...I, 1]. Token ids fed as int64 come as a view in that shape, fed by the host
    // (core/onnx/input-views.ts): onnxruntime-web's WebGPU provider has no int64 Cast or Unsqueeze.
    const idx = eqn.inputs[1]!;
    const nd = [...idx.shape, 1];
    const view = idx.dtype === 'int64' && nd.every((d) => typeof d === 'number') ? ctx.inputView(1, nd as number[]) : undefined;
    let idxNd = view;
    if (idxNd === undefined) {
      const idx64 = ctx.temp('idx64');
      ctx.node('Cast', [ctx.inputs[1]!], [idx64], { to: 7 });
      idxNd = ctx.temp('idx_nd');
      ctx.node('Unsqueeze', [idx64, ctx.int64s([idx.shape.length])], [idxNd]);
    }
    ctx.node('ScatterND', [ctx.inputs[0]!, idxNd, ctx.inputs[2]!], [ctx.out], { reduction: 'add' });
  },
  jvp: ({ primals: [base, idx, upd], tangents: [tb, , tu] }) =>
    op.scatterAddRows(tb ?? op.zerosLike(base!), idx!, tu ?? op.zerosLike(upd!)),
  vjp: ({ primals: [, idx], ct, needs }) => [needs[0] ? ct : null, null, needs[2] ? op.gather(ct, idx!) : null],
  // As lowered by default (ordered): each output element is a sum over the N indices.
  cost: (eqn) => streamingCost(eqn, 2 * count(eqn.inputs[1]!.shape)),
});

/** Elements of one one-hot block [N, C] of the ordered lowering (64 MiB in float32). */
const ONE_HOT_BLOCK = 2 ** 24;

/**
 * scatter_add_rows as matrix products (LowerCtx.orderedScatter): with the N indices as floats [N, 1] (exact below
 * 2^24) and the updates as [N, D], each block of C table rows gets onehotᵀ [C, N] · updates [N, D], where onehot
 * [N, C] = (index == row). A matrix product sums over N in a fixed order, so every run gives the same bits; rows no
 * index names get exact zeros. Blocks bound the one-hot to ONE_HOT_BLOCK elements; they are concatenated in order.
 * One difference from ScatterND: a non-finite update row reaches every row of its block (0 · NaN is NaN), not only its
 * own; with clipping by global norm a non-finite gradient already spoils every parameter either way.
 */
function lowerOrderedScatterRows(ctx: LowerCtx, eqn: Eqn): void {
  const [base, idx] = [eqn.inputs[0]!, eqn.inputs[1]!];
  // count() refuses symbolic dims: the lowering sees the shapes compile() made concrete.
  const [V, D, N] = [count(base.shape.slice(0, 1)), count(base.shape.slice(1)), count(idx.shape)];
  const rest = base.shape.slice(1) as number[];
  if (V >= 2 ** 24) throw new Error(`scatter_add_rows: the ordered lowering compares indices as float32, exact below 2^24 rows; this table has ${V}`);
  // The ids as float32 [N, 1]: converted by the host when they are fed (no int64 op on the device), else here.
  let ids = ctx.inputView(1, [N, 1], 'float32');
  if (ids === undefined) {
    const idxN1 = ctx.temp('idx_n1');
    ctx.node('Reshape', [ctx.inputs[1]!, ctx.int64s([N, 1])], [idxN1]);
    ids = ctx.temp('idx_f');
    ctx.node('Cast', [idxN1], [ids], { to: 1 });
  }
  // Negative ids count from the end, as in gather: id + V where id < 0.
  const negative = ctx.temp('idx_neg'), wrapped = ctx.temp('idx_wrapped'), idxF = ctx.temp('idx_rows');
  ctx.node('Less', [ids, ctx.scalar(0, 'float32')], [negative]);
  ctx.node('Add', [ids, ctx.scalar(V, 'float32')], [wrapped]);
  ctx.node('Where', [negative, wrapped, ids], [idxF]); // [N, 1]
  const upd = ctx.temp('upd_nd');
  ctx.node('Reshape', [ctx.inputs[2]!, ctx.int64s([N, D])], [upd]); // [N, D]
  const C = Math.max(1, Math.min(V, Math.floor(ONE_HOT_BLOCK / Math.max(N, 1))));
  const parts: string[] = [];
  for (let start = 0; start < V; start += C) {
    const rows = Math.min(C, V - start);
    const iota = ctx.tensor('float32', [1, rows], Float32Array.from({ length: rows }, (_, i) => start + i), `rows:${start}:${rows}`);
    const eq = ctx.temp('is_row'), hot = ctx.temp('one_hot'), part = ctx.temp('rows_sum');
    ctx.node('Equal', [idxF, iota], [eq]); // [N, rows] bool
    ctx.node('Cast', [eq], [hot], { to: castCode(base.dtype) }); // [N, rows], the table's dtype
    ctx.node('Gemm', [hot, upd], [part], { transA: 1 }); // [rows, D]
    parts.push(part);
  }
  let summed = parts[0]!;
  if (parts.length > 1) {
    summed = ctx.temp('rows_all');
    ctx.node('Concat', parts, [summed], { axis: 0 }); // [V, D]
  }
  const shaped = ctx.temp('rows_shaped');
  ctx.node('Reshape', [summed, ctx.int64s([V, ...rest])], [shaped]);
  ctx.node('Add', [ctx.inputs[0]!, shaped], [ctx.out]);
}

function checkAlongAxis(x: { shape: readonly (number | string)[] }, idx: { shape: readonly (number | string)[] }, axis: number): void {
  if (idx.shape.length !== x.shape.length) throw new Error(`indices rank ${idx.shape.length} must equal data rank ${x.shape.length}`);
  idx.shape.forEach((d, i) => {
    if (i !== axis && !dimEq(d, x.shape[i]!)) {
      throw new Error(`indices shape ${formatShape(idx.shape)} must match data ${formatShape(x.shape)} outside axis ${axis}`);
    }
  });
}

/** take_along_axis(x, idx, axis): out[..., j, ...] = x[..., idx[..., j, ...], ...] (ONNX GatherElements). */
export const takeAlongAxis = definePrimitive<{ axis: number }>({
  name: 'take_along_axis',
  infer: (types, p) => {
    requireArity(types, 2);
    requireInt(types[1]!);
    checkAlongAxis(types[0]!, types[1]!, p.axis);
    return { dtype: types[0]!.dtype, shape: types[1]!.shape };
  },
  lower: (ctx, eqn) => ctx.node('GatherElements', ctx.inputs, [ctx.out], { axis: eqn.params.axis }),
  jvp: ({ primals: [, idx], tangents: [t], params }) => op.takeAlongAxis(t!, idx!, params.axis),
  vjp: ({ primals: [x, idx], ct, params }) => [takeAlongAxisTranspose(x!, idx!, ct, params.axis), null],
  cost: (eqn) => streamingCost(eqn, 0),
});

/**
 * ct [idx's shape] added into zeros [x's shape] at idx along axis: take_along_axis's transpose. With one index per
 * row (a cross-entropy's label) it is a one-hot select, where(iota == idx, ct, 0): exact (each element receives at
 * most one term), no zeros buffer, and on the GPU under onnxruntime-web's WebGPU provider, which has no
 * ScatterElements kernel. The indices become int32 positions in [0, n) by a lookup in a ramp: Gather wraps negative
 * indices as GatherElements does and takes int64 indices everywhere, while that provider has no int64 Cast or
 * comparison.
 */
function takeAlongAxisTranspose(x: Tensor, idx: Tensor, ct: Tensor, axis: number): Tensor {
  const n = x.shape[axis]!;
  if (idx.shape[axis] !== 1 || typeof n !== 'number') return op.scatterAddAlongAxis(op.zerosLike(x), idx, ct, axis);
  const wrapped = op.gather(op.iota(x, [n], 0, 'int32'), idx); // idx's shape, int32
  const positions = op.iota(x, x.shape.map((d, i) => (i === axis ? d : 1)), axis, 'int32'); // n along axis, 1 elsewhere
  return op.where(op.equal(positions, wrapped), ct, 0); // x's shape
}

/** scatter_add_along_axis(base, idx, upd, axis): the transpose of take_along_axis (ONNX ScatterElements, add). */
export const scatterAddAlongAxis = definePrimitive<{ axis: number }>({
  name: 'scatter_add_along_axis',
  infer: (types, p) => {
    requireArity(types, 3);
    const [base, idx, upd] = [types[0]!, types[1]!, types[2]!];
    requireInt(idx);
    checkAlongAxis(base, idx, p.axis);
    if (!shapeEq(upd.shape, idx.shape) || upd.dtype !== base.dtype) {
      throw new Error(`updates must be ${base.dtype}${formatShape(idx.shape)}, got ${upd.dtype}${formatShape(upd.shape)}`);
    }
    return base;
  },
  lower: (ctx, eqn) => ctx.node('ScatterElements', ctx.inputs, [ctx.out], { axis: eqn.params.axis, reduction: 'add' }),
  jvp: ({ primals: [base, idx, upd], tangents: [tb, , tu], params }) =>
    op.scatterAddAlongAxis(tb ?? op.zerosLike(base!), idx!, tu ?? op.zerosLike(upd!), params.axis),
  vjp: ({ primals: [, idx], ct, params, needs }) =>
    [needs[0] ? ct : null, null, needs[2] ? op.takeAlongAxis(ct, idx!, params.axis) : null],
  cost: (eqn) => streamingCost(eqn, 0),
});

