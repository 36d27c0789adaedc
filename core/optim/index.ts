/**
 * Optimisation: optimizers, learning-rate schedules, gradient clipping and gradient accumulation.
 *
 * All of it works on float32 arrays keyed by parameter name, updated in place on the host. A training step is:
 *
 *   acc.add(grads, tokens) per micro-batch        GradAccumulator (token-weighted, = large-batch gradient)
 *   const g = acc.result()
 *   clipGradNorm(g.values(), 1.0)                 global L2 norm, as torch.nn.utils.clip_grad_norm_
 *   opt.step(params, g, lrAt(step, total, sch))   AdamW / SGD, formulas of torch.optim; schedules of transformers
 *   acc.reset()
 *
 * Checkpoints save `opt.stateDict()` and restore it with `loadStateDict`; resumed runs are bit-identical.
 *
 * On the device (`train.optimizerOn: 'device'`): `DeviceOptimizer.adamw(...)` / `.sgd(...)` do the same clipping and
 * update as compiled graphs (device-graph.ts) on a runner, `await opt.clipAndStep(params, grads, lr, maxNorm)`, one
 * graph per ~64 MiB bucket of parameters (a small norm graph first when there are several). They agree with AdamW,
 * SGD and clipGradNorm to float32 rounding (max |diff| / max |value| per tensor ~2e-7 after 6 steps, device.test.ts;
 * the norm sums squares in float32 rows of 256, then the row sums as a float32 tree of fan-out 256, all of it on a GPU
 * where there is one), save the same state dict (a checkpoint of one
 * resumes with the other), and resume bit-exactly on a given runner. It is meant for runners whose memory is not the
 * host's: on onnxruntime-node's CPU provider each elementwise operation is a pass over memory of its own, and the
 * SmolLM2-135M full fine-tuning update takes 2-3.6x the fused JavaScript loop's time (`bench:optimizer`).
 */

/** The optimizer contract (`step`, `update`, `forget`, `stateBytes`, `stateDict`, `loadStateDict`, `decayPolicy`). */
export { GroupedOptimizer, type Optimizer } from './optimizer.ts';
/** AdamW with decoupled weight decay, exactly torch.optim.AdamW's update; float32 moments. */
export { AdamW, AdamWOptionsSchema, type AdamWConfig, type AdamWOptions } from './adamw.ts';
/** SGD with momentum / Nesterov and coupled weight decay, exactly torch.optim.SGD's update. */
export { SGD, SGDOptionsSchema, type SGDConfig, type SGDOptions } from './sgd.ts';
/** AdamW / SGD (and clipping) as compiled update graphs on a runner, checked against the two above (`train.optimizerOn`). */
export { DeviceOptimizer, type DeviceAlgorithm, type DeviceOptions } from './device.ts';
export { normGraph, updateGraph, type UpdateGraphSpec, type UpdateRule } from './device-graph.ts';
/** Which parameters get weight decay: by default none of rank <= 1 and none named like /norm|bias/i. */
export { decayAll, defaultDecayPolicy, NO_DECAY_NAME, type DecayPredicate, type ParamPolicy, type ShapeTable } from './policy.ts';
/** Flat checkpoint state: `<kind>:<param>` arrays and counts, `hparam:<option>` numbers. */
export type { OptimizerStateDict, StateDictOptions } from './state.ts';
/** Learning-rate schedules (constant, linear, cosine; linear warmup) matching Hugging Face transformers. */
export { LrScheduleSchema, lrAt, lrMultiplier, warmupStepsOf, type LrSchedule, type LrScheduleInput } from './schedule.ts';
/** Global-norm gradient clipping matching torch.nn.utils.clip_grad_norm_. */
export { clipGradNorm, globalNorm, sumOfSquares } from './clip.ts';
/** Token-weighted gradient accumulation over micro-batches. */
export { GradAccumulator, type GradTable } from './accumulate.ts';
