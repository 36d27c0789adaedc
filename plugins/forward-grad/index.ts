/**
 * Forward gradient (Baydin et al. 2022, "Gradients without Backpropagation"): one forward-mode pass computes the
 * loss and its directional derivative ∇f·v along a random v ~ N(0, I); (∇f·v) v is an unbiased estimate of the
 * gradient, handed to the configured optimizer. No backward pass and no stored activations: the JVP graph carries
 * primal and tangent values forward together (kernel forward mode, `jvp`).
 *
 * ```ts
 * plugins: [fullFinetune(), forwardGrad()]
 * ```
 */
import { jvp, tangentName, type EstimatorStep, type Graph, type GradientEstimator, type HostTensor, type Plugin } from '../../core/index.ts';
import { forEachNormal, tensorSeed } from '../zo/normal.ts';
import { forwardGradSchema, type ForwardGradOptions } from './config.ts';

export const FORWARD_GRAD = 'tuneforge:forward-grad';

export function forwardGradEstimator(queries: number): GradientEstimator {
  const graphs = new Map<string, Graph>();
  const jvpGraph = (forward: Graph, trainable: readonly string[]) => {
    const key = trainable.join(',');
    let g = graphs.get(key);
    if (!g) {
      graphs.clear();
      g = jvp(forward, { wrt: trainable });
      graphs.set(key, g);
    }
    return g;
  };
  return {
    name: 'forward-grad',
    memory: { graphs: (forward, trainable) => [jvpGraph(forward, trainable)], gradients: true },
    async estimate(s: EstimatorStep) {
      const exe = await s.compile(jvpGraph(s.forward, s.trainable), 'forward-grad');
      const grads = new Map<string, Float32Array>();
      let loss = 0;
      for (let q = 0; q < queries; q++) {
        const seed = Math.floor(s.ctx.random() * 2 ** 32);
        const tangents = new Map<string, Float32Array>();
        s.trainable.forEach((name, index) => {
          const v = new Float32Array(s.ctx.params.get(name)!.data.length);
          forEachNormal(tensorSeed(seed, index), v.length, (z, i) => { v[i] = z; });
          tangents.set(name, v);
        });
        const feeds: Record<string, HostTensor> = {};
        for (const i of exe.inputs) {
          const t = i.name.startsWith('tangent:') ? tangents.get(i.name.slice('tangent:'.length)) : undefined;
          feeds[i.name] = t ? { dtype: 'float32', shape: i.dims, data: t } : (s.feeds[i.name] ?? s.ctx.params.get(i.name)!);
        }
        const out = await exe.run(feeds);
        loss += Number(out.loss!.data[0]) / queries;
        const d = Number(out[tangentName('loss')]!.data[0]) / queries; // (∇f·v) / Q
        for (const [name, v] of tangents) {
          const g = grads.get(name);
          if (!g) {
            for (let i = 0; i < v.length; i++) v[i] = v[i]! * d; // the tangent buffer becomes the gradient
            grads.set(name, v);
          } else for (let i = 0; i < v.length; i++) g[i] = g[i]! + d * v[i]!;
        }
      }
      return { loss, grads };
    },
  };
}

export function forwardGrad(options: ForwardGradOptions = {}): Plugin {
  const cfg = forwardGradSchema.parse(options);
  return {
    name: FORWARD_GRAD,
    options: cfg,
    conflicts: ['tuneforge:zo'],
    'step:estimator'() {
      return forwardGradEstimator(cfg.queries);
    },
  };
}

export { forwardGradSchema, type ForwardGradOptions };
