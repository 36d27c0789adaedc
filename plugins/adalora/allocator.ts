/**
 * PEFT's RankAllocator: sensitivity EMAs of every adapter element, the cubic budget schedule, and masking of the
 * least important singular values against one global threshold. Plain loops over the (small) adapter tensors.
 *
 * The arithmetic of the EMAs and scores is rounded to float32 after every operation, as PyTorch computes them on
 * float32 tensors, so ties and thresholds fall where PEFT's do given the same parameters and gradients.
 */
import type { HostTensor } from '../../core/index.ts';
import { loraAName, loraBName, loraEName } from './layer.ts';

const f32 = Math.fround;

/** One adapted module as the allocator sees it. */
export interface AllocatedModule {
  name: string;
  /** Rows of A and E, columns of B. */
  r: number;
  inFeatures: number;
  outFeatures: number;
}

/** Per module name, one boolean per triplet: true = kept (PEFT's rank_pattern values). */
export type RankPattern = Record<string, boolean[]>;

export interface Schedule {
  tinit: number;
  tfinal: number;
  deltaT: number;
  totalStep: number;
  initBudget: number;
  targetBudget: number;
}

/**
 * The budget at `step` and whether to mask (PEFT's `budget_schedule`): the full budget up to `tinit`; the target
 * after `T − tfinal`; in between `int((init − target)·(1 − (step − tinit)/(T − tfinal − tinit))³ + target)`, masking
 * every `deltaT` steps.
 */
export function budgetSchedule(s: Schedule, step: number): { budget: number; mask: boolean } {
  if (step <= s.tinit) return { budget: s.initBudget, mask: false };
  if (step > s.totalStep - s.tfinal) return { budget: s.targetBudget, mask: true };
  const coefficient = 1 - (step - s.tinit) / (s.totalStep - s.tfinal - s.tinit);
  const budget = Math.trunc((s.initBudget - s.targetBudget) * Math.pow(coefficient, 3) + s.targetBudget);
  return { budget, mask: step % s.deltaT === 0 };
}

/** What one `update_and_allocate` call did (for logs and tests). */
export interface AllocationEvent {
  phase: 'warmup' | 'allocate' | 'final' | 'fixed';
  budget: number;
  /** A new rank pattern was computed and applied. */
  masked: boolean;
}

export interface AllocatorState {
  /** The smoothed sensitivity I and uncertainty U of every element, modules in name order, A then E then B. */
  ipt: Float32Array;
  unc: Float32Array;
  rankPattern: RankPattern | null;
}

export type ScheduleTiming = Omit<Schedule, 'initBudget' | 'targetBudget'> & { targetR: number };

export interface AllocatorOptions {
  beta1: number;
  beta2: number;
}

export class RankAllocator {
  readonly modules: readonly AllocatedModule[];
  readonly schedule: Schedule;
  /** I and U per parameter name (A, E and B of every module). */
  private readonly ipt = new Map<string, Float32Array>();
  private readonly unc = new Map<string, Float32Array>();
  private pattern: RankPattern | null = null;

  /** The initial budget is the sum of the modules' ranks, the target `targetR` per module (PEFT's init_bgt, target_bgt). */
  constructor(modules: readonly AllocatedModule[], timing: ScheduleTiming, private readonly options: AllocatorOptions) {
    this.modules = [...modules].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    const initBudget = this.modules.reduce((s, m) => s + m.r, 0);
    const { tinit, tfinal, deltaT, totalStep, targetR } = timing;
    this.schedule = { tinit, tfinal, deltaT, totalStep, initBudget, targetBudget: targetR * this.modules.length };
    for (const name of this.paramNames()) {
      const n = this.sizeOf(name);
      this.ipt.set(name, new Float32Array(n));
      this.unc.set(name, new Float32Array(n));
    }
  }

  /** Every parameter the allocator scores, in state order. */
  paramNames(): string[] {
    return this.modules.flatMap((m) => [loraAName(m.name), loraEName(m.name), loraBName(m.name)]);
  }

  private sizeOf(name: string): number {
    const m = this.modules.find((x) => name === loraAName(x.name) || name === loraEName(x.name) || name === loraBName(x.name))!;
    return name.endsWith('.lora_A') ? m.r * m.inFeatures : name.endsWith('.lora_E') ? m.r : m.outFeatures * m.r;
  }

  get rankPattern(): RankPattern | null {
    return this.pattern && Object.fromEntries(Object.entries(this.pattern).map(([k, v]) => [k, [...v]]));
  }

  /** I and U of one parameter (live arrays: read, do not keep). */
  sensitivity(name: string): { ipt: Float32Array; unc: Float32Array } | undefined {
    const ipt = this.ipt.get(name), unc = this.unc.get(name);
    return ipt && unc ? { ipt, unc } : undefined;
  }

  /**
   * ipt = |p · ∇p|, I = β1 I + (1 − β1) ipt, U = β2 U + (1 − β2) |ipt − I| (with the new I, as PEFT), for every
   * element of A, E and B. `params` are the values after the update, `grads` the gradients it used.
   */
  updateSensitivity(params: ReadonlyMap<string, HostTensor>, grads: ReadonlyMap<string, Float32Array>): void {
    const b1 = f32(this.options.beta1), c1 = f32(1 - this.options.beta1);
    const b2 = f32(this.options.beta2), c2 = f32(1 - this.options.beta2);
    for (const name of this.paramNames()) {
      const p = params.get(name)?.data as Float32Array | undefined, g = grads.get(name);
      if (!p || !g) continue; // not trained this step: PEFT would have no gradient either
      const I = this.ipt.get(name)!, U = this.unc.get(name)!;
      for (let i = 0; i < I.length; i++) {
        const s = f32(Math.abs(p[i]! * g[i]!));
        const smoothed = f32(f32(b1 * I[i]!) + f32(c1 * s));
        I[i] = smoothed;
        U[i] = f32(f32(b2 * U[i]!) + f32(c2 * f32(Math.abs(f32(s - smoothed)))));
      }
    }
  }

  /** Zeroes I and U (PEFT's `reset_ipt`: its next update starts from zeros again). */
  reset(): void {
    for (const a of this.ipt.values()) a.fill(0);
    for (const a of this.unc.values()) a.fill(0);
  }

  /** Per module, the score of each triplet: s(E_i) + (mean_j s(A_ij) + mean_o s(B_oi)), s = I · U. */
  tripletScores(): Map<string, Float32Array> {
    const out = new Map<string, Float32Array>();
    for (const m of this.modules) {
      const [iA, uA] = [this.ipt.get(loraAName(m.name))!, this.unc.get(loraAName(m.name))!];
      const [iE, uE] = [this.ipt.get(loraEName(m.name))!, this.unc.get(loraEName(m.name))!];
      const [iB, uB] = [this.ipt.get(loraBName(m.name))!, this.unc.get(loraBName(m.name))!];
      const scores = new Float32Array(m.r);
      for (let k = 0; k < m.r; k++) {
        // Row k of A [r, in] and column k of B [out, r]; the means are summed in float64 (PyTorch's float32
        // reduction order cannot be reproduced anyway), then rounded.
        let a = 0, b = 0;
        for (let j = 0; j < m.inFeatures; j++) a += f32(iA[k * m.inFeatures + j]! * uA[k * m.inFeatures + j]!);
        for (let o = 0; o < m.outFeatures; o++) b += f32(iB[o * m.r + k]! * uB[o * m.r + k]!);
        const vectors = f32(f32(a / m.inFeatures) + f32(b / m.outFeatures));
        scores[k] = f32(f32(iE[k]! * uE[k]!) + vectors);
      }
      out.set(m.name, scores);
    }
    return out;
  }

  /**
   * PEFT's `mask_to_budget`: the threshold is the k-th smallest triplet score over all modules, k = initial budget −
   * `budget`; every E entry whose score is <= the threshold is zeroed (ties may mask more than k). k <= 0 masks nothing.
   */
  maskToBudget(params: ReadonlyMap<string, HostTensor>, budget: number): RankPattern {
    const scores = this.tripletScores();
    const k = this.schedule.initBudget - budget;
    let threshold = -Infinity;
    if (k > 0) {
      const all = Float64Array.from([...scores.values()].flatMap((s) => [...s])).sort(); // NaN sorts last
      threshold = all[Math.min(k, all.length) - 1]!;
    }
    const pattern: RankPattern = {};
    for (const m of this.modules) {
      const s = scores.get(m.name)!;
      const e = params.get(loraEName(m.name))!.data as Float32Array;
      pattern[m.name] = Array.from(s, (v, i) => {
        const masked = v <= threshold;
        if (masked) e[i] = 0;
        return !masked;
      });
    }
    return pattern;
  }

  /** PEFT's `mask_using_rank_pattern`: zero the E entries the fixed pattern dropped. */
  applyPattern(params: ReadonlyMap<string, HostTensor>, pattern: RankPattern): void {
    for (const m of this.modules) {
      const keep = pattern[m.name];
      if (!keep) continue;
      const e = params.get(loraEName(m.name))!.data as Float32Array;
      keep.forEach((kept, i) => {
        if (!kept) e[i] = 0;
      });
    }
  }

  /**
   * PEFT's `AdaLoraModel.update_and_allocate(step)`, after the optimizer update: before T − tfinal update the EMAs
   * and mask on the schedule; at T − tfinal mask to the target budget (the EMAs of that step are not updated, as in
   * PEFT) and reset the EMAs; afterwards re-apply that final pattern (the optimizer revives masked entries).
   */
  step(step: number, params: ReadonlyMap<string, HostTensor>, grads: ReadonlyMap<string, Float32Array> | undefined): AllocationEvent {
    const end = this.schedule.totalStep - this.schedule.tfinal;
    if (step < end) {
      if (grads) this.updateSensitivity(params, grads);
      const { budget, mask } = budgetSchedule(this.schedule, step);
      if (mask) this.pattern = this.maskToBudget(params, budget);
      return { phase: step <= this.schedule.tinit ? 'warmup' : 'allocate', budget, masked: mask };
    }
    if (step === end) {
      const { budget } = budgetSchedule(this.schedule, step);
      this.pattern = this.maskToBudget(params, budget);
      this.reset();
      return { phase: 'final', budget, masked: true };
    }
    if (this.pattern) this.applyPattern(params, this.pattern);
    return { phase: 'fixed', budget: this.schedule.targetBudget, masked: false };
  }

  state(): AllocatorState {
    const names = this.paramNames();
    const n = names.reduce((s, name) => s + this.ipt.get(name)!.length, 0);
    const ipt = new Float32Array(n), unc = new Float32Array(n);
    let at = 0;
    for (const name of names) {
      ipt.set(this.ipt.get(name)!, at);
      unc.set(this.unc.get(name)!, at);
      at += this.ipt.get(name)!.length;
    }
    return { ipt, unc, rankPattern: this.rankPattern };
  }

  restore(state: AllocatorState): void {
    const names = this.paramNames();
    const n = names.reduce((s, name) => s + this.ipt.get(name)!.length, 0);
    if (state.ipt.length !== n || state.unc.length !== n) {
      throw new Error(`saved sensitivities have ${state.ipt.length} values but the adapter has ${n} (was the checkpoint made with other targets or ranks?)`);
    }
    let at = 0;
    for (const name of names) {
      const len = this.ipt.get(name)!.length;
      this.ipt.get(name)!.set(state.ipt.subarray(at, at + len));
      this.unc.get(name)!.set(state.unc.subarray(at, at + len));
      at += len;
    }
    this.pattern = state.rankPattern && Object.fromEntries(Object.entries(state.rankPattern).map(([k, v]) => [k, [...v]]));
  }
}
