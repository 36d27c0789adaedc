/**
 * The LoRA gradient step that runners are compared and timed on (the conformance suite's LoRA case, bench:runners):
 * a model folder's loss with LoRA adapters as the trainer builds it (the real plugin driver), differentiated with
 * respect to the adapters, the base weights meant to be compiled in as resident. B is filled by the caller instead of
 * starting at zero, so every adapter tensor has a non-zero gradient to compare.
 */
import { valueAndGrad } from '../core/autodiff/vjp.ts';
import { trace, type Graph } from '../core/ir/graph.ts';
import { hostTensor, type HostTensor } from '../core/ir/host.ts';
import { buildCausalLM, causalLMLoss } from '../core/models/llama.ts';
import { loadModel } from '../core/models/load.ts';
import { paramSpecs } from '../core/models/params.ts';
import type { ModelConfig } from '../core/models/config.ts';
import { baseWeightsOf, PluginDriver, type PluginContext } from '../core/plugin/index.ts';
import { lora, type LoraOptions } from '../plugins/lora/index.ts';

export interface LoraGradientStep {
  config: ModelConfig;
  /** Value and gradient of `loss` with respect to every adapter tensor (`grad:<name>`). */
  graph: Graph;
  /** The base weights: resident in the compiled step. */
  weights: Map<string, HostTensor>;
  /** The adapters as the plugin initialises them, B replaced by `fillB`. */
  adapters: Map<string, HostTensor>;
}

export async function loraGradientStep(
  modelDir: string, o: { B: number; T: number; lora: LoraOptions; seed: number; fillB: (length: number) => number[] },
): Promise<LoraGradientStep> {
  const { config, weights } = await loadModel(modelDir);
  const driver = new PluginDriver([lora(o.lora)]);
  const ctx: PluginContext = {
    model: { config, specs: paramSpecs(config) }, run: { dir: '', seed: o.seed, totalSteps: 1 }, phase: 'train',
    log: () => {}, plugin: (name) => driver.api(name),
  };
  await driver.validate(ctx);
  const forward = trace((g) => ({ loss: causalLMLoss(g, buildCausalLM(g, config, { batch: o.B, seq: o.T, hooks: driver.modelHooks(ctx) })) }));
  const pending = forward.inputs.filter((i) => !weights.has(i.name) && i.name !== 'input_ids' && i.name !== 'labels');
  const adapters = new Map<string, HostTensor>();
  for (const { value } of await driver.collect('params:init', ctx, pending.map((i) => ({ name: i.name, shape: i.v.shape as number[] })), baseWeightsOf(weights))) {
    for (const [n, t] of value) adapters.set(n, t);
  }
  for (const [n, t] of adapters) if (n.includes('lora_B')) adapters.set(n, hostTensor('float32', t.shape, o.fillB(t.data.length)));
  return { config, graph: valueAndGrad(forward, { of: 'loss', wrt: [...adapters.keys()] }), weights, adapters };
}
