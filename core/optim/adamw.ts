/**
 * AdamW: Adam with decoupled weight decay (Loshchilov & Hutter), updating float32 parameters in place.
 *
 * The update is exactly torch.optim.AdamW's (amsgrad=False, maximize=False), per parameter, at step t = 1, 2, ...:
 *
 *   param  = param * (1 - lr * weight_decay)
 *   m      = m.lerp(g, 1 - beta1)                     (= beta1 * m + (1 - beta1) * g)
 *   v      = beta2 * v + (1 - beta2) * g * g
 *   denom  = sqrt(v) / sqrt(1 - beta2^t) + eps
 *   param  = param - (lr / (1 - beta1^t)) * m / denom
 *
 * State (m, v) is float32 like PyTorch's; arithmetic within one element is done in float64 and rounded when stored,
 * so results agree with PyTorch to float32 rounding (not bit for bit). Each parameter keeps its own step count t.
 */
import { z } from 'zod';
import { GroupedOptimizer } from './optimizer.ts';
import type { ParamPolicy } from './policy.ts';
import {
  HPARAM, checkHparam, maybeCopy, splitStateKey, stateArray, stateCount, stateKey, writeHparams,
  type OptimizerStateDict, type StateDictOptions,
} from './state.ts';

export const AdamWOptionsSchema = z.object({
  lr: z.number().nonnegative().default(1e-3).describe('learning rate used by update() when none is given (torch default 1e-3)'),
  beta1: z.number().min(0).lt(1).default(0.9).describe('decay rate of the first moment (torch betas[0])'),
  beta2: z.number().min(0).lt(1).default(0.999).describe('decay rate of the second moment (torch betas[1])'),
  eps: z.number().nonnegative().default(1e-8).describe('added to the bias-corrected sqrt of the second moment'),
  weightDecay: z.number().nonnegative().default(0)
    .describe('decoupled weight decay for parameters in the decayed group (default 0 as Hugging Face Trainer; torch defaults to 0.01)'),
});
/** Options as written by callers (all optional but validated). */
export type AdamWOptions = z.input<typeof AdamWOptionsSchema>;
/** Options after validation and defaults. */
export type AdamWConfig = z.infer<typeof AdamWOptionsSchema>;

const WHO = 'AdamW';

export class AdamW extends GroupedOptimizer {
  readonly options: AdamWConfig;
  protected override readonly label = WHO;
  private m = new Map<string, Float32Array>();
  private v = new Map<string, Float32Array>();
  private steps = new Map<string, number>();

  constructor(options: AdamWOptions = {}, policy?: ParamPolicy) {
    super(policy);
    this.options = AdamWOptionsSchema.parse(options);
  }

  protected override get weightDecay(): number {
    return this.options.weightDecay;
  }

  /** One update of `param` from `grad`; `lr` overrides the configured rate (for schedules). */
  override update(name: string, param: Float32Array, grad: Float32Array, lr = this.options.lr, weightDecay = this.options.weightDecay): void {
    let m = this.m.get(name), v = this.v.get(name);
    this.checkLengths(name, param, grad, m);
    if (!m || !v) {
      m = new Float32Array(param.length);
      v = new Float32Array(param.length);
      this.m.set(name, m);
      this.v.set(name, v);
    }
    const t = (this.steps.get(name) ?? 0) + 1;
    this.steps.set(name, t);
    const { beta1, beta2, eps } = this.options;
    const a1 = 1 - beta1, b2 = beta2, a2 = 1 - beta2;
    const stepSize = lr / (1 - beta1 ** t);
    const invBc2Sqrt = 1 / Math.sqrt(1 - beta2 ** t);
    const decay = 1 - lr * weightDecay;
    const n = param.length;
    for (let i = 0; i < n; i++) {
      const g = grad[i]!;
      const mOld = m[i]!;
      const mi = Math.fround(mOld + a1 * (g - mOld));
      const vi = Math.fround(b2 * v[i]! + a2 * g * g);
      m[i] = mi;
      v[i] = vi;
      param[i] = param[i]! * decay - (stepSize * mi) / (Math.sqrt(vi) * invBc2Sqrt + eps);
    }
  }

  override forget(name: string): void {
    this.m.delete(name);
    this.v.delete(name);
    this.steps.delete(name);
  }

  override stateBytes(): number {
    let n = 0;
    for (const a of this.m.values()) n += a.byteLength;
    for (const a of this.v.values()) n += a.byteLength;
    return n;
  }

  private hparams(): Record<string, number> {
    const { beta1, beta2, eps, weightDecay } = this.options;
    return { beta1, beta2, eps, weightDecay };
  }

  /** Keys: `exp_avg:<name>`, `exp_avg_sq:<name>` (Float32Array), `step:<name>` (count), `hparam:<option>`. */
  override stateDict({ copy = true }: StateDictOptions = {}): OptimizerStateDict {
    const out: OptimizerStateDict = {};
    for (const [name, m] of this.m) {
      out[stateKey('exp_avg', name)] = maybeCopy(m, copy);
      out[stateKey('exp_avg_sq', name)] = maybeCopy(this.v.get(name)!, copy);
      out[stateKey('step', name)] = this.steps.get(name)!;
    }
    writeHparams(out, this.hparams());
    return out;
  }

  override loadStateDict(state: OptimizerStateDict): void {
    const m = new Map<string, Float32Array>(), v = new Map<string, Float32Array>(), steps = new Map<string, number>();
    const hparams = this.hparams();
    for (const [key, value] of Object.entries(state)) {
      const [kind, name] = splitStateKey(key, WHO);
      if (kind === 'exp_avg') m.set(name, stateArray(value, key, WHO).slice());
      else if (kind === 'exp_avg_sq') v.set(name, stateArray(value, key, WHO).slice());
      else if (kind === 'step') steps.set(name, stateCount(value, key, WHO));
      else if (kind === HPARAM) checkHparam(hparams, name, value, WHO);
      else throw new Error(`${WHO}.loadStateDict: unknown key '${key}' (is this another optimizer's state?)`);
    }
    for (const name of new Set([...m.keys(), ...v.keys(), ...steps.keys()])) {
      const mi = m.get(name), vi = v.get(name);
      if (!mi || !vi || !steps.has(name)) throw new Error(`${WHO}.loadStateDict: '${name}' needs exp_avg, exp_avg_sq and step`);
      if (mi.length !== vi.length) throw new Error(`${WHO}.loadStateDict: '${name}' has exp_avg of ${mi.length} but exp_avg_sq of ${vi.length}`);
    }
    this.m = m;
    this.v = v;
    this.steps = steps;
  }
}
