/** Logits of a model with plugins on a fixed batch: what export round trips compare. */
import { buildCausalLM, compile, trace, type HostTensor, type Plugin } from '../core/index.ts';
import { kitFeeds, setupKitModel } from './run-model.ts';

/**
 * Logits [B, T, V] of `model` with `plugins` (their hooks and their parameters as `params:init` makes them,
 * overridden by `weights`), on the kit's batch for `seed`.
 */
export async function kitLogits(model: string, plugins: readonly Plugin[], weights: ReadonlyMap<string, HostTensor> = new Map(), dims = { B: 2, T: 8 }, seed = 5): Promise<Float32Array> {
  const { m, trainable } = await setupKitModel(model, plugins);
  for (const [n, t] of weights) if (m.params.has(n)) m.params.set(n, t);
  const ctx = { ...m.ctx, phase: 'eval' as const };
  const graph = trace((g) => ({ logits: buildCausalLM(g, m.ctx.model.config, { batch: 'B', seq: 'T', hooks: m.driver.modelHooks(ctx) }).logits }));
  const exe = await compile(graph, { dims });
  try {
    const feeds = await kitFeeds(m, trainable, dims, seed);
    const inputs: Record<string, HostTensor> = {};
    for (const i of exe.inputs) inputs[i.name] = feeds[i.name] ?? m.params.get(i.name)!;
    return (await exe.run(inputs)).logits!.data as Float32Array;
  } finally {
    await exe.release();
  }
}

/** max |a − b| / max |b|. */
export function maxRelDiff(a: Float32Array, b: Float32Array): number {
  let diff = 0, scale = 0;
  for (let i = 0; i < b.length; i++) {
    diff = Math.max(diff, Math.abs(a[i]! - b[i]!));
    scale = Math.max(scale, Math.abs(b[i]!));
  }
  return diff / Math.max(scale, 1e-30);
}
