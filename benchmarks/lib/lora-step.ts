/**
 * bench:runners' LoRA gradient step (r 8, alpha 16 on q_proj and v_proj; runners/lora-step.ts) of a model folder:
 * the frozen weights resident in the session (as the trainer compiles them for a runner that keeps them), the batch
 * and the adapters fed.
 */
import type { Graph } from '../../core/ir/graph.ts';
import { hostTensor, type HostTensor } from '../../core/ir/host.ts';
import { loraGradientStep } from '../../runners/lora-step.ts';

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
  const random = lcg(7);
  const { config, graph, weights, adapters } = await loraGradientStep(modelDir, {
    B, T, lora: { r: 8, alpha: 16, targets: ['q_proj', 'v_proj'] }, seed: 0,
    fillB: (n) => Array.from({ length: n }, () => 0.02 * (random() - 0.5)),
  });
  // Token ids below 512 exist in every vocabulary (the stories260k tokenizer's range); labels are the next token.
  const ids = BigInt64Array.from({ length: B * T }, () => BigInt(Math.floor(random() * Math.min(512, config.vocabSize))));
  const labels = BigInt64Array.from({ length: B * T }, (_, i) => ((i + 1) % T === 0 ? -100n : ids[i + 1]!));
  return {
    graph, resident: weights,
    feeds: { input_ids: hostTensor('int64', [B, T], ids), labels: hostTensor('int64', [B, T], labels), ...Object.fromEntries(adapters) },
    grads: [...adapters.keys()].map((n) => `grad:${n}`),
    tokens: B * T,
    parameters: [...weights.values()].reduce((s, t) => s + t.data.length, 0),
  };
}
