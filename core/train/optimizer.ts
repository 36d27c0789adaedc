/** The run's optimizer from the config, and its state in checkpoint form. */
import type { HostTensor } from '../ir/host.ts';
import { AdamW } from '../optim/adamw.ts';
import { DeviceOptimizer } from '../optim/device.ts';
import type { Optimizer } from '../optim/optimizer.ts';
import { SGD } from '../optim/sgd.ts';
import type { OptimizerStateDict } from '../optim/state.ts';
import type { TrainConfig } from './config.ts';
import type { Runner } from '../../runners/types.ts';

/** `runner`: where a device optimizer's graphs run (the trainer's runner; onnxruntime-node here when absent). */
export function makeOptimizer(t: TrainConfig['train'], shapes: ReadonlyMap<string, readonly number[]>, runner?: Runner): Optimizer {
  if (t.optimizerOn === 'device') {
    // The clipped gradients are written back so step:after hooks (AdaLoRA) read what the update used, as on the host.
    const device = { clippedGrads: true, ...(runner ? { runner } : {}) };
    return t.optimizer === 'sgd'
      ? DeviceOptimizer.sgd({ lr: t.lr, momentum: t.momentum, nesterov: t.nesterov, weightDecay: t.weightDecay }, { shapes }, device)
      : DeviceOptimizer.adamw({ lr: t.lr, beta1: t.beta1, beta2: t.beta2, eps: t.eps, weightDecay: t.weightDecay }, { shapes }, device);
  }
  if (t.optimizer === 'sgd') {
    return new SGD({ lr: t.lr, momentum: t.momentum, nesterov: t.nesterov, weightDecay: t.weightDecay }, { shapes });
  }
  return new AdamW({ lr: t.lr, beta1: t.beta1, beta2: t.beta2, eps: t.eps, weightDecay: t.weightDecay }, { shapes });
}

/** Splits a state dict into tensors (for safetensors) and scalars (for JSON). */
export function optimizerToCheckpoint(opt: Optimizer): { tensors: Map<string, HostTensor>; scalars: Record<string, number> } {
  const tensors = new Map<string, HostTensor>();
  const scalars: Record<string, number> = {};
  // The optimizer's own arrays, not copies: the checkpoint is written before the next update, and a copy would add
  // the whole optimizer state (8 bytes per trainable parameter with AdamW) to the run's peak at every checkpoint.
  for (const [k, v] of Object.entries(opt.stateDict({ copy: false }))) {
    if (typeof v === 'number') scalars[k] = v;
    else tensors.set(k, { dtype: 'float32', shape: [v.length], data: v });
  }
  return { tensors, scalars };
}

export function optimizerFromCheckpoint(opt: Optimizer, tensors: ReadonlyMap<string, HostTensor>, scalars: Record<string, number>): void {
  const state: OptimizerStateDict = { ...scalars };
  for (const [k, t] of tensors) state[k] = t.data as Float32Array;
  opt.loadStateDict(state);
}
