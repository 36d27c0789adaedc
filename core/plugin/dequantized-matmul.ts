/**
 * A product with a weight stored in a compact format (NF4, int8, ...), dequantised inside the compiled graph right
 * before use: `${name}_matmul(x, qs...; transpose)` -> x W^T (transpose) or x W. The backward rule for x is the same
 * primitive in the other orientation, which dequantises a second time, so the float W is a short-lived temporary of
 * each product and is never kept from the forward pass to the backward pass: only the compact inputs stay resident.
 * A storage plugin describes its format (`DequantFormat`) and gets the primitive (`dequantizedMatmul`).
 *
 * Two details keep that memory promise under onnxruntime, and a format's `lower` must respect the second:
 * - onnxruntime orders nodes by a reverse depth-first walk that visits a node's highest-index input first. The
 *   dequantisation nodes are emitted before the node that reshapes x, so x's (long) history is scheduled first and
 *   W is made just before the Gemm that consumes it, not at the start of the step;
 * - the backward product (`variant` 'bwd') must build W with nodes of other types or inputs than the forward one
 *   ('fwd'), e.g. a cast through int32 first, so onnxruntime's common-subexpression elimination cannot merge the two
 *   into one W kept alive across the step.
 */
import { DTYPES, isFloat, type DType } from '../ir/dtype.ts';
import type { Tensor } from '../ir/graph.ts';
import { definePrimitive, type Cost, type LowerCtx, type Primitive } from '../ir/primitive.ts';
import type { TensorType } from '../ir/graph.ts';
import * as op from '../ops/api.ts';

/** What every format's params hold: the weight's shape, [out, in] for a linear layer. */
export interface DequantParams {
  readonly shape: readonly number[];
}

export type DequantMatmulParams<P extends DequantParams> = P & {
  /** true: y = x W^T (x [..., in] -> [..., out], the linear layer); false: y = x W (x [..., out] -> [..., in]). */
  readonly transpose: boolean;
};

/** A storage format: its quantised inputs ("qs", the codes first), how they are checked and turned into W. */
export interface DequantFormat<P extends DequantParams> {
  /** The primitive is `${name}_matmul`. */
  readonly name: string;
  /** The params the primitive keeps (a clean copy: nothing but the format's fields). */
  params(p: P): P;
  /** Checks the quantised inputs against the params; returns the float dtype W is made in. */
  check(qs: readonly TensorType[], p: P): DType;
  /** Emits W [out, in] from the quantised inputs' ONNX names; returns W's name. See the module comment on `variant`. */
  lower(ctx: LowerCtx, qs: readonly string[], p: P, dtype: DType, variant: 'fwd' | 'bwd'): string;
  /** Flops and bytes of making W. */
  weightCost(p: P): { flops: number; bytes: number };
  /** The quantised inputs with the float ones replaced by their tangents (zeros where null): W is linear in them. */
  atTangents(qs: readonly Tensor[], tangents: readonly (Tensor | null)[], p: P): Tensor[];
  /** Cotangents of the quantised inputs (null for the codes) from dL/dW `gw` [out, in]; `needs` per quantised input. */
  cotangents(gw: Tensor, qs: readonly Tensor[], p: P, needs: readonly boolean[]): (Tensor | null)[];
}

const fmtType = (t: TensorType) => `${t.dtype}[${t.shape.join(',')}]`;

/** The product primitive of a format, and the function that binds it. */
export function dequantizedMatmul<P extends DequantParams>(format: DequantFormat<P>): {
  prim: Primitive<DequantMatmulParams<P>>;
  matmul(x: Tensor, qs: readonly Tensor[], p: P, transpose?: boolean): Tensor;
} {
  const matmul = (x: Tensor, qs: readonly Tensor[], p: P, transpose = true): Tensor =>
    x.builder.bind(prim, [x, ...qs], { ...format.params(p), transpose });
  const prim: Primitive<DequantMatmulParams<P>> = definePrimitive<DequantMatmulParams<P>>({
    name: `${format.name}_matmul`,
    infer: (types, p) => {
      const [x, ...qs] = types;
      if (!x || !isFloat(x.dtype)) throw new Error(`x must be a float tensor, got ${x ? fmtType(x) : 'nothing'}`);
      if (p.shape.length !== 2) throw new Error(`the weight must be 2-D, got shape [${p.shape.join(',')}]`);
      const dtype = format.check(qs, p);
      if (dtype !== x.dtype) throw new Error(`x is ${x.dtype} but the scales are ${dtype}`);
      const [out, inp] = p.shape as [number, number];
      const k = p.transpose ? inp : out, n = p.transpose ? out : inp;
      if (x.shape.length < 1 || x.shape.at(-1) !== k) throw new Error(`x ${fmtType(x)} must end with ${k} (weight [${out},${inp}]${p.transpose ? ' transposed' : ''})`);
      return { dtype: x.dtype, shape: [...x.shape.slice(0, -1), n] };
    },
    lower: (ctx, eqn) => {
      const p = eqn.params;
      const lead = eqn.inputs[0]!.shape.slice(0, -1).map(Number);
      const m = lead.reduce((a, b) => a * b, 1);
      const [out, inp] = p.shape as [number, number];
      const k = p.transpose ? inp : out, n = p.transpose ? out : inp;
      // The weight first, then x's reshape: see the module comment (onnxruntime's scheduling order).
      const w = format.lower(ctx, ctx.inputs.slice(1), p, eqn.out.dtype, p.transpose ? 'fwd' : 'bwd');
      const x2 = ctx.temp('x2d');
      ctx.node('Reshape', [ctx.inputs[0]!, ctx.int64s([m, k])], [x2]);
      const y2 = ctx.temp('y2d');
      ctx.node('Gemm', [x2, w], [y2], { transB: p.transpose ? 1 : 0 });
      ctx.node('Reshape', [y2, ctx.int64s([...lead, n])], [ctx.out]);
    },
    jvp: ({ primals, tangents, params }) => {
      const [x, ...qs] = primals;
      const [tx, ...tqs] = tangents;
      const viaX = tx ? matmul(tx, qs, params, params.transpose) : null;
      const viaW = tqs.some(Boolean) ? matmul(x!, format.atTangents(qs, tqs, params), params, params.transpose) : null;
      return viaX && viaW ? op.add(viaX, viaW) : (viaX ?? viaW);
    },
    vjp: ({ primals, ct, params, needs }) => {
      const [x, ...qs] = primals;
      // dx: the product with the other orientation, which dequantises W again (nothing kept from the forward pass).
      const dx = needs[0] ? matmul(ct, qs, params, !params.transpose) : null;
      const qNeeds = needs.slice(1);
      if (!qNeeds.slice(1).some(Boolean)) return [dx, ...qs.map(() => null)];
      // The scales' gradients (never needed for a frozen base; here for completeness): dL/dW = a^T b [out, in].
      const flat = (t: Tensor) => op.reshape(t, [t.shape.slice(0, -1).reduce(op.mulDims, 1), t.shape.at(-1)!]);
      const [a, b] = params.transpose ? [ct, x!] : [x!, ct];
      const gw = op.matmul(op.transpose(flat(a), [1, 0]), flat(b));
      return [dx, ...format.cotangents(gw, qs, params, qNeeds)];
    },
    cost: (eqn): Cost => {
      const x = eqn.inputs[0]!;
      const m = x.shape.slice(0, -1).reduce<number>((acc, d) => acc * Number(d), 1);
      const [out, inp] = eqn.params.shape as [number, number];
      const w = format.weightCost(eqn.params);
      const xBytes = m * (eqn.params.transpose ? inp : out) * DTYPES[x.dtype].bytes;
      const yBytes = m * (eqn.params.transpose ? out : inp) * DTYPES[x.dtype].bytes;
      return { flops: 2 * m * out * inp + w.flops, bytes: w.bytes + xBytes + yBytes };
    },
  });
  return { prim, matmul };
}
