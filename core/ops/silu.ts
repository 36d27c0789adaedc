/**
 * SiLU (swish), x·σ(x). A primitive rather than a composite for memory: its derivative σ(x)(1 + x(1 − σ(x))) is
 * recomputed from x, so the backward pass keeps only x, where the composite would also keep σ(x), a
 * [batch, tokens, intermediate] tensor in every gated MLP.
 */
import { definePrimitive } from '../ir/primitive.ts';
import * as op from './api.ts';
import { requireArity, requireFloat, streamingCost } from './util.ts';

function derivative(x: ReturnType<typeof op.sigmoid>) {
  const s = op.sigmoid(x);
  return op.mul(s, op.add(1, op.mul(x, op.sub(1, s))));
}

export const silu = definePrimitive<Record<string, never>>({
  name: 'silu',
  infer: (types) => {
    requireArity(types, 1);
    requireFloat(types[0]!);
    return types[0]!;
  },
  lower: (ctx) => {
    const s = ctx.temp('sigmoid');
    ctx.node('Sigmoid', ctx.inputs, [s]);
    ctx.node('Mul', [ctx.inputs[0]!, s], [ctx.out]);
  },
  jvp: ({ primals: [x], tangents: [t] }) => op.mul(t!, derivative(x!)),
  vjp: ({ primals: [x], ct }) => [op.mul(ct, derivative(x!))],
  cost: (eqn) => streamingCost(eqn, 6),
});
