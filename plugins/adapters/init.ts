/**
 * Initial adapter values as LLM-Adapters' `Linear.reset_parameters` sets them:
 * - `bert` (`init_bert_weights`): adapter_down and adapter_up ~ N(0, 0.02²);
 * - `mam_adapter`: adapter_down Kaiming-uniform with a = √5, i.e. U(−1/√fan_in, 1/√fan_in), adapter_up zero.
 * The learned scaling starts at 1 (`torch.ones(1)`). There are no adapter biases to initialise.
 */
import { hostTensor, seededRandom, type HostTensor } from '../../core/index.ts';

/** One reproducible stream per tensor, from the run seed and the tensor's name (as LoRA does). */
function streamFor(seed: number, name: string): () => number {
  return seededRandom(seed * 7919 + [...name].reduce((h, c) => (h * 31 + c.charCodeAt(0)) >>> 0, 17));
}

/** N(0, std²) by Box–Muller. */
function normal(shape: readonly number[], std: number, random: () => number): HostTensor {
  const data = new Float32Array(shape.reduce((a, d) => a * d, 1));
  for (let i = 0; i < data.length; i++) data[i] = std * Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
  return hostTensor('float32', shape, data);
}

/** down: [bs, dIn]. */
export function initDown(init: 'bert' | 'mam', shape: readonly [number, number], seed: number, name: string): HostTensor {
  const random = streamFor(seed, name);
  if (init === 'bert') return normal(shape, 0.02, random);
  // kaiming_uniform_(a=√5): gain √(2 / (1 + a²)) = √(1/3), bound = gain · √(3 / fan_in) = 1 / √fan_in.
  const bound = 1 / Math.sqrt(shape[1]);
  const data = new Float32Array(shape[0] * shape[1]);
  for (let i = 0; i < data.length; i++) data[i] = (2 * random() - 1) * bound;
  return hostTensor('float32', shape, data);
}

/** up: [dOut, bs]. */
export function initUp(init: 'bert' | 'mam', shape: readonly [number, number], seed: number, name: string): HostTensor {
  return init === 'bert' ? normal(shape, 0.02, streamFor(seed, name)) : hostTensor('float32', shape);
}

export function initScaling(): HostTensor {
  return hostTensor('float32', [1], new Float32Array([1]));
}
