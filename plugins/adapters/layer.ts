/**
 * The bottleneck adapter, f(u) = adapter_up(act(adapter_down(u))) · scaling, and where it sits around a linear layer
 * (LLM-Adapters, peft/src/peft/tuners/bottleneck.py, `Linear.forward`):
 * - `input` (the fork's mh_adapter; LLaMA's gate_proj, up_proj): y = W (x + f(x)) + b, f maps d_in → d_in;
 * - `output` (output_adapter; down_proj and any other series target): h = W x + b, y = h + f(h), f maps d_out → d_out;
 * - `parallel` (parallel_adapter; any target): y = W x + b + f(x), f maps d_in → d_out.
 * Neither matrix has a bias (the fork builds both with `bias=False`).
 */
import { nn, op, type LinearSite, type Tensor } from '../../core/index.ts';
import type { NonLinearity } from './config.ts';

export type Placement = 'input' | 'output' | 'parallel';

/** Series modules whose adapter acts on the input (TRANSFORMERS_MODELS_TO_ADAPTER_TYPE_MAPPING['llama']: mh_adapter). */
const INPUT_SIDE: ReadonlySet<string> = new Set(['gate_proj', 'up_proj']);

export function placementOf(kind: 'series' | 'parallel', site: Pick<LinearSite, 'module'>): Placement {
  if (kind === 'parallel') return 'parallel';
  return INPUT_SIDE.has(site.module) ? 'input' : 'output';
}

/** The adapter's input and output widths at a site. */
export function adapterWidths(placement: Placement, site: Pick<LinearSite, 'inFeatures' | 'outFeatures'>): { dIn: number; dOut: number } {
  if (placement === 'input') return { dIn: site.inFeatures, dOut: site.inFeatures };
  if (placement === 'output') return { dIn: site.outFeatures, dOut: site.outFeatures };
  return { dIn: site.inFeatures, dOut: site.outFeatures };
}

/** The bottleneck actually built: a bottleneck wider than what it compresses (dIn) is clamped to dIn when asked. */
export function bottleneckOf(requested: number, dIn: number, clamp: boolean): number {
  return clamp ? Math.min(requested, dIn) : requested;
}

export const downName = (module: string): string => `${module}.adapter_down.weight`;
export const upName = (module: string): string => `${module}.adapter_up.weight`;
/** The learned scalar (`nn.Parameter(torch.ones(1))` named `adapter_scaling` in the fork): [1]. */
export const scalingName = (module: string): string => `${module}.adapter_scaling`;
export const maskName = (module: string): string => `${module}.adapter_dropout_mask`;

/** transformers' ACT2FN entries of the same names. */
export function activation(name: NonLinearity, x: Tensor): Tensor {
  switch (name) {
    case 'tanh': return op.tanh(x);
    case 'relu': return op.maximum(x, 0);
    case 'leaky_relu': return op.maximum(x, op.mul(x, 0.01)); // nn.LeakyReLU's default slope
    case 'gelu': return nn.gelu(x);
    case 'gelu_new': case 'gelu_fast': case 'gelu_pytorch_tanh': return nn.gelu(x, 'tanh');
    case 'quick_gelu': return op.mul(x, op.sigmoid(op.mul(x, 1.702)));
    case 'silu': case 'swish': return op.silu(x);
    case 'sigmoid': return op.sigmoid(x);
    case 'linear': return x;
  }
}

/** f(u) = up(act(down u)) · scaling.  u: [..., dIn], down: [bs, dIn], up: [dOut, bs] -> [..., dOut] */
export function bottleneck(u: Tensor, down: Tensor, up: Tensor, act: NonLinearity, scaling: Tensor | number): Tensor {
  const out = nn.linear(activation(act, nn.linear(u, down)), up); // [..., bs] -> [..., dOut]
  return scaling === 1 ? out : op.mul(out, scaling);
}
