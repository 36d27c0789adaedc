/**
 * AdamW with decoupled weight decay (Loshchilov & Hutter), updating float32 parameters in place.
 * State (first and second moments) is created lazily per parameter name and can be dropped with `forget`.
 */
export interface AdamWOptions {
  lr: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
  weightDecay?: number;
}

export class AdamW {
  private readonly m = new Map<string, Float32Array>();
  private readonly v = new Map<string, Float32Array>();
  private readonly steps = new Map<string, number>();
  constructor(readonly options: AdamWOptions) {}

  /** One update of `param` from `grad`; `lr` overrides the configured rate (for schedules). */
  update(name: string, param: Float32Array, grad: Float32Array, lr = this.options.lr, weightDecay = this.options.weightDecay ?? 0): void {
    if (param.length !== grad.length) throw new Error(`AdamW: '${name}' has ${param.length} values but its gradient ${grad.length}`);
    const b1 = this.options.beta1 ?? 0.9, b2 = this.options.beta2 ?? 0.999, eps = this.options.eps ?? 1e-8;
    let m = this.m.get(name), v = this.v.get(name);
    if (!m || !v) {
      m = new Float32Array(param.length);
      v = new Float32Array(param.length);
      this.m.set(name, m);
      this.v.set(name, v);
    }
    const t = (this.steps.get(name) ?? 0) + 1;
    this.steps.set(name, t);
    const c1 = 1 / (1 - b1 ** t), c2 = 1 / (1 - b2 ** t);
    const decay = 1 - lr * weightDecay;
    for (let i = 0; i < param.length; i++) {
      const g = grad[i]!;
      const mi = (m[i] = b1 * m[i]! + (1 - b1) * g);
      const vi = (v[i] = b2 * v[i]! + (1 - b2) * g * g);
      param[i] = param[i]! * decay - (lr * (mi * c1)) / (Math.sqrt(vi * c2) + eps);
    }
  }

  /** Releases the state of a parameter (e.g. when it is frozen again). */
  forget(name: string): void {
    this.m.delete(name);
    this.v.delete(name);
    this.steps.delete(name);
  }

  /** Bytes held in optimizer state. */
  stateBytes(): number {
    let n = 0;
    for (const a of this.m.values()) n += a.byteLength;
    for (const a of this.v.values()) n += a.byteLength;
    return n;
  }
}
