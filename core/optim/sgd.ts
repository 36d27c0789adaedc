/**
 * SGD with momentum, optional Nesterov momentum and coupled (L2) weight decay, updating float32 parameters in place.
 *
 * The update is exactly torch.optim.SGD's (maximize=False), per parameter:
 *
 *   d = g + weight_decay * param
 *   if momentum != 0:
 *     buf = d                                         on the first step (torch clones the gradient)
 *     buf = momentum * buf + (1 - dampening) * d      afterwards
 *     d = nesterov ? d + momentum * buf : buf
 *   param = param - lr * d
 *
 * The momentum buffer is float32 like PyTorch's; arithmetic within one element is done in float64 and rounded when
 * stored. Without momentum there is no state.
 */
import { z } from 'zod';
import { GroupedOptimizer } from './optimizer.ts';
import type { ParamPolicy } from './policy.ts';
import {
  HPARAM, checkHparam, maybeCopy, splitStateKey, stateArray, stateKey, writeHparams,
  type OptimizerStateDict, type StateDictOptions,
} from './state.ts';

export const SGDOptionsSchema = z
  .object({
    lr: z.number().nonnegative().default(1e-3).describe('learning rate used by update() when none is given (torch default 1e-3)'),
    momentum: z.number().min(0).default(0).describe('momentum factor; 0 keeps no state'),
    dampening: z.number().min(0).max(1).default(0).describe('dampening of the gradient added to the momentum buffer'),
    nesterov: z.boolean().default(false).describe('Nesterov momentum (needs momentum > 0 and dampening 0, as in torch)'),
    weightDecay: z.number().nonnegative().default(0)
      .describe('L2 penalty added to the gradient (coupled, as torch SGD) for parameters in the decayed group'),
  })
  .refine((o) => !o.nesterov || (o.momentum > 0 && o.dampening === 0), {
    message: 'Nesterov momentum requires a momentum and zero dampening',
  });
/** Options as written by callers (all optional but validated). */
export type SGDOptions = z.input<typeof SGDOptionsSchema>;
/** Options after validation and defaults. */
export type SGDConfig = z.infer<typeof SGDOptionsSchema>;

const WHO = 'SGD';
const BUF = 'momentum_buffer';

export class SGD extends GroupedOptimizer {
  readonly options: SGDConfig;
  protected override readonly label = WHO;
  private buffers = new Map<string, Float32Array>();

  constructor(options: SGDOptions = {}, policy?: ParamPolicy) {
    super(policy);
    this.options = SGDOptionsSchema.parse(options);
  }

  protected override get weightDecay(): number {
    return this.options.weightDecay;
  }

  override update(name: string, param: Float32Array, grad: Float32Array, lr = this.options.lr, weightDecay = this.options.weightDecay): void {
    const { momentum, dampening, nesterov } = this.options;
    const n = param.length;
    const wd = weightDecay;
    let buf = this.buffers.get(name);
    this.checkLengths(name, param, grad, buf);
    if (momentum === 0) {
      for (let i = 0; i < n; i++) {
        const p = param[i]!;
        param[i] = p - lr * (grad[i]! + wd * p);
      }
      return;
    }
    // buf' = cb * buf + cd * d, with (cb, cd) = (0, 1) on the first step (the fresh buffer is zeros).
    const first = !buf;
    if (!buf) {
      buf = new Float32Array(n);
      this.buffers.set(name, buf);
    }
    const cb = first ? 0 : momentum, cd = first ? 1 : 1 - dampening;
    for (let i = 0; i < n; i++) {
      const p = param[i]!;
      const d = grad[i]! + wd * p;
      const b = Math.fround(cb * buf[i]! + cd * d);
      buf[i] = b;
      param[i] = p - lr * (nesterov ? d + momentum * b : b);
    }
  }

  override forget(name: string): void {
    this.buffers.delete(name);
  }

  override stateBytes(): number {
    let n = 0;
    for (const a of this.buffers.values()) n += a.byteLength;
    return n;
  }

  private hparams(): Record<string, number> {
    const { momentum, dampening, nesterov, weightDecay } = this.options;
    return { momentum, dampening, nesterov: nesterov ? 1 : 0, weightDecay };
  }

  /** Keys: `momentum_buffer:<name>` (Float32Array) and `hparam:<option>` (nesterov as 0/1). */
  override stateDict({ copy = true }: StateDictOptions = {}): OptimizerStateDict {
    const out: OptimizerStateDict = {};
    for (const [name, b] of this.buffers) out[stateKey(BUF, name)] = maybeCopy(b, copy);
    writeHparams(out, this.hparams());
    return out;
  }

  override loadStateDict(state: OptimizerStateDict): void {
    const buffers = new Map<string, Float32Array>();
    const hparams = this.hparams();
    for (const [key, value] of Object.entries(state)) {
      const [kind, name] = splitStateKey(key, WHO);
      if (kind === BUF) buffers.set(name, stateArray(value, key, WHO).slice());
      else if (kind === HPARAM) checkHparam(hparams, name, value, WHO);
      else throw new Error(`${WHO}.loadStateDict: unknown key '${key}' (is this another optimizer's state?)`);
    }
    this.buffers = buffers;
  }
}
