/**
 * Softmax along one axis. A primitive rather than a composite for memory: its derivative needs only its output
 * (dp = p ⊙ (t − Σ t ⊙ p)), while the composed exp / sum / div form keeps both the exponentials and the
 * probabilities alive for the backward pass: in attention that is an extra [B, H, T, T] tensor per layer.
 */
import { definePrimitive } from '../ir/primitive.ts';
import * as op from './api.ts';
import { requireArity, requireFloat, streamingCost } from './util.ts';

export const softmax = definePrimitive<{ axis: number }>({
  name: 'softmax',
  infer: (types, p) => {
    requireArity(types, 1);
    requireFloat(types[0]!);
    if (p.axis < 0 || p.axis >= types[0]!.shape.length) throw new Error(`axis ${p.axis} out of range for rank ${types[0]!.shape.length}`);
    return types[0]!;
  },
  lower: (ctx, eqn) => ctx.node('Softmax', ctx.inputs, [ctx.out], { axis: eqn.params.axis }),
  jvp: ({ tangents: [t], out, params }) => op.mul(out, op.sub(t!, op.sum(op.mul(t!, out), params.axis, true))),
  vjp: ({ ct, out, params }) => [op.mul(out, op.sub(ct, op.sum(op.mul(ct, out), params.axis, true)))],
  cost: (eqn) => streamingCost(eqn, 5),
});
