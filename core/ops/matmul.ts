/** Batched matrix product with ONNX MatMul semantics for rank >= 2: [..., M, K] @ [..., K, N] -> [..., M, N]. */
import type { Tensor } from '../ir/graph.ts';
import { definePrimitive } from '../ir/primitive.ts';
import { broadcastShapes, dimEq, formatShape } from '../ir/shape.ts';
import * as op from './api.ts';
import { bytesOf, count, requireArity, requireFloat, requireSameDType } from './util.ts';

/** Swaps the last two axes. */
function mT(x: Tensor): Tensor {
  const perm = [...x.shape.keys()];
  perm.splice(-2, 2, x.rank - 1, x.rank - 2);
  return op.transpose(x, perm);
}

/** Collapses all leading axes: [..., K] -> [prod(...), K]. */
function flatten2d(x: Tensor): Tensor {
  return op.reshape(x, [x.shape.slice(0, -1).reduce(op.mulDims, 1), x.shape.at(-1)!]);
}

export const matmul = definePrimitive<Record<string, never>>({
  name: 'matmul',
  infer: (types) => {
    requireArity(types, 2);
    const dtype = requireSameDType(types);
    requireFloat(types[0]!, 'operands');
    const [a, b] = [types[0]!.shape, types[1]!.shape];
    if (a.length < 2 || b.length < 2) throw new Error('operands must have rank >= 2 (reshape vectors to matrices)');
    if (!dimEq(a.at(-1)!, b.at(-2)!)) {
      throw new Error(`inner dimensions differ: ${formatShape(a)} @ ${formatShape(b)} (${a.at(-1)} vs ${b.at(-2)})`);
    }
    const batch = broadcastShapes(a.slice(0, -2), b.slice(0, -2));
    if (!batch) throw new Error(`batch dimensions of ${formatShape(a)} and ${formatShape(b)} do not broadcast`);
    return { dtype, shape: [...batch, a.at(-2)!, b.at(-1)!] };
  },
  lower: (ctx) => ctx.node('MatMul', ctx.inputs, [ctx.out]),
  jvp: ({ primals: [a, b], tangents: [ta, tb] }) => {
    const left = ta ? op.matmul(ta, b!) : null;
    const right = tb ? op.matmul(a!, tb) : null;
    return left && right ? op.add(left, right) : (left ?? right);
  },
  vjp: ({ primals: [a, b], ct, needs }) => {
    const ga = needs[0] ? op.unbroadcast(op.matmul(ct, mT(b!)), a!.shape) : null;
    let gb: Tensor | null = null;
    if (needs[1]) {
      // A weight shared across the batch ([..., M, K] @ [K, N]): fold the batch into M so the gradient is one
      // [K, N] product instead of a batch of them summed afterwards.
      if (b!.rank === 2 && a!.rank > 2) gb = op.matmul(mT(flatten2d(a!)), flatten2d(ct));
      else gb = op.unbroadcast(op.matmul(mT(a!), ct), b!.shape);
    }
    return [ga, gb];
  },
  cost: (eqn) => {
    const k = eqn.inputs[0]!.shape.at(-1) as number;
    return { flops: 2 * count(eqn.out.shape) * k, bytes: bytesOf(eqn.inputs[0]!) + bytesOf(eqn.inputs[1]!) + bytesOf(eqn.out) };
  },
});
