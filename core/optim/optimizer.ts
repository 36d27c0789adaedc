/**
 * The optimizer contract and the parameter-group logic shared by `AdamW` and `SGD`.
 *
 * Parameters and gradients are float32 arrays keyed by parameter name; parameters are updated in place. State is
 * created lazily per name on its first update, so frozen parameters (no gradient) never cost optimizer memory.
 */
import { defaultDecayPolicy, shapeMap, type DecayPredicate, type ParamPolicy } from './policy.ts';
import type { OptimizerStateDict, StateDictOptions } from './state.ts';

export interface Optimizer {
  /**
   * One update of every parameter that has a gradient, at learning rate `lr`. Weight decay is applied to a parameter
   * only when `decayPolicy(name)` says so. Parameters without a gradient are left alone (as PyTorch skips
   * `grad is None`); a gradient without a parameter is an error. The JavaScript optimizers finish before returning;
   * one running on a runner (`DeviceOptimizer`) returns a promise: await it.
   */
  step(params: ReadonlyMap<string, Float32Array>, grads: ReadonlyMap<string, Float32Array>, lr: number): void | Promise<void>;
  /**
   * One update of a single parameter (no group policy: `weightDecay` is used as given, default the configured one).
   * `step` calls it per parameter; calling it directly lets a caller free each gradient as soon as it is applied.
   */
  update(name: string, param: Float32Array, grad: Float32Array, lr?: number, weightDecay?: number): void | Promise<void>;
  /** Releases the state of a parameter (e.g. when it is frozen again); its next update starts fresh. */
  forget(name: string): void;
  /** Bytes held in optimizer state arrays. */
  stateBytes(): number;
  /** The whole state, for checkpoints; restoring it with `loadStateDict` gives bit-identical later updates. */
  stateDict(options?: StateDictOptions): OptimizerStateDict;
  /** Brings state kept away from this process (on a runner) back, so `stateDict` can read it. Await it before. */
  syncState?(): Promise<void>;
  /** Replaces the whole state with a saved one (arrays are copied). Validates everything before changing anything. */
  loadStateDict(state: OptimizerStateDict): void;
  /** Whether weight decay applies to a parameter; `shape` defaults to the one registered for `name`. */
  decayPolicy(name: string, shape?: readonly number[]): boolean;
  /** Registers the shape of a parameter for `decayPolicy`. */
  setShape(name: string, shape: readonly number[]): void;
}

/** Implements `step` and the decay policy over an optimizer's per-parameter `update`. */
export abstract class GroupedOptimizer implements Optimizer {
  private readonly shapes: Map<string, readonly number[]>;
  private readonly decide: DecayPredicate;

  constructor(policy: ParamPolicy = {}) {
    this.shapes = shapeMap(policy.shapes);
    this.decide = policy.decay ?? defaultDecayPolicy;
  }

  /** The weight decay coefficient used for parameters in the decayed group. */
  protected abstract readonly weightDecay: number;
  /** Name used in error messages. */
  protected abstract readonly label: string;

  abstract update(name: string, param: Float32Array, grad: Float32Array, lr?: number, weightDecay?: number): void;
  abstract forget(name: string): void;
  abstract stateBytes(): number;
  abstract stateDict(options?: StateDictOptions): OptimizerStateDict;
  abstract loadStateDict(state: OptimizerStateDict): void;

  step(params: ReadonlyMap<string, Float32Array>, grads: ReadonlyMap<string, Float32Array>, lr: number): void {
    if (!Number.isFinite(lr) || lr < 0) throw new Error(`${this.label}.step: learning rate ${lr} is not a finite number >= 0`);
    for (const [name, grad] of grads) {
      const param = params.get(name);
      if (!param) throw new Error(`${this.label}.step: gradient for '${name}' but no such parameter`);
      this.update(name, param, grad, lr, this.decayPolicy(name) ? this.weightDecay : 0);
    }
  }

  decayPolicy(name: string, shape: readonly number[] | undefined = this.shapes.get(name)): boolean {
    return this.decide(name, shape);
  }

  setShape(name: string, shape: readonly number[]): void {
    this.shapes.set(name, [...shape]);
  }

  /** Throws unless a parameter and its gradient (and existing state) have the same length. */
  protected checkLengths(name: string, param: Float32Array, grad: Float32Array, state?: Float32Array): void {
    if (param.length !== grad.length) throw new Error(`${this.label}: '${name}' has ${param.length} values but its gradient ${grad.length}`);
    if (state && state.length !== param.length) {
      throw new Error(`${this.label}: '${name}' has ${param.length} values but its optimizer state ${state.length} (forget it first if it changed)`);
    }
  }
}
