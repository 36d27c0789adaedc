/**
 * Batched matrix product with ONNX MatMul broadcasting for rank >= 2, on optionally transposed operands:
 *   out = op(a) @ op(b),  op(x) = x with its last two axes swapped when the flag (ta / tb) is set.
 * The flags let `linear` use weights in their [out, in] layout and let derivative rules form products like
 * ct @ W or ctᵀ @ x without materialising a transposed copy: with a 2-D weight they lower to ONNX Gemm.
 */
import type { Tensor, TensorType } from '../ir/graph.ts';
import { definePrimitive } from '../ir/primitive.ts';
import { broadcastShapes, dimEq, formatShape, type Dim } from '../ir/shape.ts';
import * as op from './api.ts';
import { bytesOf, count, requireArity, requireFloat, requireSameDType } from './util.ts';

export interface MatmulParams {
  readonly ta?: boolean;
  readonly tb?: boolean;
}

/** The last two dims as op(x) sees them: [rows, cols]. */
function view(t: TensorType, transposed: boolean | undefined): [Dim, Dim] {
  const [r, c] = [t.shape.at(-2)!, t.shape.at(-1)!];
  return transposed ? [c, r] : [r, c];
}

/** Collapses all leading axes: [..., K] -> [prod(...), K]. */
function flatten2d(x: Tensor): Tensor {
  return op.reshape(x, [x.shape.slice(0, -1).reduce(op.mulDims, 1), x.shape.at(-1)!]);
}

export const matmul = definePrimitive<MatmulParams>({
  name: 'matmul',
  infer: (types, p) => {
    requireArity(types, 2);
    const dtype = requireSameDType(types);
    requireFloat(types[0]!, 'operands');
    const [a, b] = [types[0]!, types[1]!];
    if (a.shape.length < 2 || b.shape.length < 2) throw new Error('operands must have rank >= 2 (reshape vectors to matrices)');
    const [m, k1] = view(a, p.ta), [k2, n] = view(b, p.tb);
    if (!dimEq(k1, k2)) {
      const desc = `${p.ta ? 'op(a)' : 'a'}${formatShape(a.shape)} @ ${p.tb ? 'op(b)' : 'b'}${formatShape(b.shape)}`;
      throw new Error(`inner dimensions differ: ${desc} (${k1} vs ${k2})`);
    }
    const batch = broadcastShapes(a.shape.slice(0, -2), b.shape.slice(0, -2));
    if (!batch) throw new Error(`batch dimensions of ${formatShape(a.shape)} and ${formatShape(b.shape)} do not broadcast`);
    return { dtype, shape: [...batch, m, n] };
  },
  lower: (ctx, { inputs: [a, b], out, params: p }) => {
    const [an, bn] = ctx.inputs as [string, string];
    if (a!.shape.length === 2 && b!.shape.length === 2) {
      ctx.node('Gemm', [an, bn], [ctx.out], { transA: p.ta ? 1 : 0, transB: p.tb ? 1 : 0 });
    } else if (b!.shape.length === 2 && !p.ta) {
      // [..., M, K] @ op(b): one Gemm over the flattened rows.
      const k = a!.shape.at(-1) as number;
      const flat = ctx.temp('rows');
      ctx.node('Reshape', [an, ctx.int64s([-1, k])], [flat]);
      const prod = ctx.temp('gemm');
      ctx.node('Gemm', [flat, bn], [prod], { transB: p.tb ? 1 : 0 });
      ctx.node('Reshape', [prod, ctx.int64s(out.shape.map(Number))], [ctx.out]);
    } else {
      const swap = (name: string, rank: number) => {
        const perm = [...Array(rank).keys()];
        perm.splice(-2, 2, rank - 1, rank - 2);
        const t = ctx.temp('transposed');
        ctx.node('Transpose', [name], [t], { perm });
        return t;
      };
      ctx.node('MatMul', [p.ta ? swap(an, a!.shape.length) : an, p.tb ? swap(bn, b!.shape.length) : bn], [ctx.out]);
    }
  },
  jvp: ({ primals: [a, b], tangents: [ta, tb], params }) => {
    const left = ta ? op.matmul(ta, b!, params) : null;
    const right = tb ? op.matmul(a!, tb, params) : null;
    return left && right ? op.add(left, right) : (left ?? right);
  },
  vjp: ({ primals: [a, b], ct, needs, params: { ta = false, tb = false } }) => {
    // c = op(a) @ op(b).  d op(a) = ct @ op(b)ᵀ,  d op(b) = op(a)ᵀ @ ct;  transposed operands take the transpose.
    let ga: Tensor | null = null, gb: Tensor | null = null;
    if (needs[0]) {
      ga = ta ? op.matmul(b!, ct, { ta: tb, tb: true }) : op.matmul(ct, b!, { tb: !tb });
      ga = op.unbroadcast(ga, a!.shape);
    }
    if (needs[1]) {
      if (b!.rank === 2 && a!.rank > 2 && !ta) {
        // A weight shared across the batch: fold the batch into the rows so the gradient is one 2-D product.
        const a2 = flatten2d(a!), ct2 = flatten2d(ct);
        gb = tb ? op.matmul(ct2, a2, { ta: true }) : op.matmul(a2, ct2, { ta: true });
      } else {
        gb = tb ? op.matmul(ct, a!, { ta: true, tb: ta }) : op.matmul(a!, ct, { ta: !ta });
        gb = op.unbroadcast(gb, b!.shape);
      }
    }
    return [ga, gb];
  },
  cost: (eqn) => {
    const k = view(eqn.inputs[0]!, eqn.params.ta)[1] as number;
    return { flops: 2 * count(eqn.out.shape) * k, bytes: bytesOf(eqn.inputs[0]!) + bytesOf(eqn.inputs[1]!) + bytesOf(eqn.out) };
  },
});
