/**
 * RMSNorm, y = x · r · w with r = 1/sqrt(mean(x²) + eps) over the last axis. A primitive rather than a composite
 * for memory: its derivatives are recomputed from x and w, so the backward pass keeps only x, where the composite
 * would also keep the normalised x·r, one [batch, tokens, hidden] tensor per norm (two norms per layer).
 *   dx = r · (g − x̂ · mean(g · x̂)),  g = ct · w,  x̂ = x · r;   dw = Σ ct · x̂ over the leading axes.
 */
import type { Tensor } from '../ir/graph.ts';
import { definePrimitive } from '../ir/primitive.ts';
import { dimEq, formatShape } from '../ir/shape.ts';
import * as op from './api.ts';
import { requireArity, requireFloat, requireSameDType, streamingCost } from './util.ts';

function rstd(x: Tensor, eps: number): Tensor {
  return op.rsqrt(op.add(op.mean(op.mul(x, x), -1, true), eps)); // [..., 1]
}

export const rmsNorm = definePrimitive<{ eps: number }>({
  name: 'rms_norm',
  infer: (types) => {
    requireArity(types, 2);
    requireSameDType(types);
    requireFloat(types[0]!);
    const [x, w] = [types[0]!, types[1]!];
    if (w.shape.length !== 1 || !dimEq(w.shape[0]!, x.shape.at(-1)!)) {
      throw new Error(`weight ${formatShape(w.shape)} must be [${x.shape.at(-1)}] (the last axis of x ${formatShape(x.shape)})`);
    }
    return x;
  },
  lower: (ctx, { params: { eps }, inputs: [x] }) => {
    const [xn, wn] = ctx.inputs as [string, string];
    const sq = ctx.temp('sq'), ms = ctx.temp('mean_sq'), shifted = ctx.temp('plus_eps'), root = ctx.temp('rms'), normed = ctx.temp('normed');
    ctx.node('Mul', [xn, xn], [sq]);
    ctx.node('ReduceMean', [sq, ctx.int64s([x!.shape.length - 1])], [ms], { keepdims: 1 });
    ctx.node('Add', [ms, ctx.scalar(eps, x!.dtype)], [shifted]);
    ctx.node('Sqrt', [shifted], [root]);
    ctx.node('Div', [xn, root], [normed]);
    ctx.node('Mul', [normed, wn], [ctx.out]);
  },
  jvp: ({ primals: [x, w], tangents: [tx, tw], params: { eps } }) => {
    const r = rstd(x!, eps);
    const xhat = op.mul(x!, r);
    let out: Tensor | null = null;
    if (tx) {
      // d(x·r) = r·(dx − x̂·mean(x̂·dx))
      const dxhat = op.mul(r, op.sub(tx, op.mul(xhat, op.mean(op.mul(xhat, tx), -1, true))));
      out = op.mul(dxhat, w!);
    }
    if (tw) out = out ? op.add(out, op.mul(xhat, tw)) : op.mul(xhat, tw);
    return out;
  },
  vjp: ({ primals: [x, w], ct, needs, params: { eps } }) => {
    const r = rstd(x!, eps);
    const xhat = op.mul(x!, r);
    const dx = needs[0] ? (() => {
      const g = op.mul(ct, w!);
      return op.mul(r, op.sub(g, op.mul(xhat, op.mean(op.mul(g, xhat), -1, true))));
    })() : null;
    const dw = needs[1] ? op.sum(op.mul(ct, xhat), [...Array(x!.rank - 1).keys()]) : null;
    return [dx, dw];
  },
  cost: (eqn) => streamingCost(eqn, 5),
});
