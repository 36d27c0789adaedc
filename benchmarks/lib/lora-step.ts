/**
 * A LoRA gradient step (r 8, alpha 16 on q_proj and v_proj) of a model folder as a graph to compile on any runner:
 * the frozen weights resident in the session (as the trainer compiles them for a runner that keeps them), the
 * batch and the adapters fed. B starts random rather than zero so that every adapter tensor has a gradient to compare.
 */
import { valueAndGrad } from '../../core/autodiff/vjp.ts';
import { trace, type Graph } from '../../core/ir/graph.ts';
import { hostTensor, type HostTensor } from '../../core/ir/host.ts';
import { buildCausalLM, causalLMLoss } from '../../core/models/llama.ts';
import { loadModel } from '../../core/models/load.ts';
import { paramSpecs } from '../../core/models/params.ts';
import { baseWeightsOf, PluginDriver, type PluginContext } from '../../core/plugin/index.ts';
import { lora } from '../../plugins/lora/index.ts';

export interface LoraStep {
  graph: Graph;
  resident: Map<string, HostTensor>;
  feeds: Record<string, HostTensor>;
  /** Names of the gradient outputs. */
  grads: string[];
  tokens: number;
  parameters: number;
}

/** Deterministic small pseudo-random numbers (a linear congruential generator), so every runner gets the same feeds. */
function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
}

export async function loraStep(modelDir: string, B: number, T: number): Promise<LoraStep> {
  const { config, weights } = await loadModel(modelDir);
  const driver = new PluginDriver([lora({ r: 8, alpha: 16, targets: ['q_proj', 'v_proj'] })]);
  const ctx: PluginContext = {
    model: { config, specs: paramSpecs(config) }, run: { dir: '', seed: 0, totalSteps: 1 }, phase: 'train',
    log: () => {}, plugin: (name) => driver.api(name),
  };
  await driver.validate(ctx);
  const forward = trace((g) => ({ loss: causalLMLoss(g, buildCausalLM(g, config, { batch: B, seq: T, hooks: driver.modelHooks(ctx) })) }));
  const pending = forward.inputs.filter((i) => !weights.has(i.name) && i.name !== 'input_ids' && i.name !== 'labels');
  const adapters = new Map<string, HostTensor>();
  for (const { value } of await driver.collect('params:init', ctx, pending.map((i) => ({ name: i.name, shape: i.v.shape as number[] })), baseWeightsOf(weights))) {
    for (const [n, t] of value) adapters.set(n, t);
  }
  const random = lcg(7);
  for (const [n, t] of adapters) {
    if (n.includes('lora_B')) adapters.set(n, hostTensor('float32', t.shape, Array.from({ length: t.data.length }, () => 0.02 * (random() - 0.5))));
  }
  // Token ids below 512 exist in every vocabulary (the stories260k tokenizer's range); labels are the next token.
  const ids = BigInt64Array.from({ length: B * T }, () => BigInt(Math.floor(random() * Math.min(512, config.vocabSize))));
  const labels = BigInt64Array.from({ length: B * T }, (_, i) => ((i + 1) % T === 0 ? -100n : ids[i + 1]!));
  const graph = valueAndGrad(forward, { of: 'loss', wrt: [...adapters.keys()] });
  return {
    graph, resident: weights,
    feeds: { input_ids: hostTensor('int64', [B, T], ids), labels: hostTensor('int64', [B, T], labels), ...Object.fromEntries(adapters) },
    grads: [...adapters.keys()].map((n) => `grad:${n}`),
    tokens: B * T,
    parameters: [...weights.values()].reduce((s, t) => s + t.data.length, 0),
  };
}
