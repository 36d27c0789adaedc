/**
 * Gradient accumulation over micro-batches, weighted by loss tokens.
 *
 * With a mean-over-tokens loss, micro-batch i (n_i loss tokens) yields g_i, the gradient of its own mean loss
 * L_i = (1/n_i) sum_{tokens in i} l. The large batch of N = sum_i n_i tokens has loss L = (1/N) sum_all l
 * = sum_i (n_i / N) L_i, hence gradient sum_i (n_i / N) g_i: that is what `result()` returns. (Averaging g_i with
 * equal weights is only right when every micro-batch has as many loss tokens, which padding and masking break.)
 *
 * `add` accumulates n_i * g_i into float32 buffers owned by the accumulator; `result` divides by N once.
 * A micro-batch with no loss tokens contributes nothing (its own mean loss is undefined) and its gradients are not read.
 */

export type GradTable = ReadonlyMap<string, Float32Array> | Readonly<Record<string, Float32Array>>;

export class GradAccumulator {
  private readonly sums = new Map<string, Float32Array>();
  private tokens = 0;
  private batches = 0;
  private done = false;

  /** Loss tokens added so far (N). */
  get tokenCount(): number {
    return this.tokens;
  }

  /** Micro-batches added so far (including ones without loss tokens). */
  get microBatches(): number {
    return this.batches;
  }

  /** Adds the gradients of one micro-batch's mean loss, computed over `tokenCount` loss tokens. */
  add(grads: GradTable, tokenCount: number): void {
    if (this.done) throw new Error('GradAccumulator.add: result() was taken; call reset() first');
    if (!Number.isInteger(tokenCount) || tokenCount < 0) throw new Error(`GradAccumulator.add: token count ${tokenCount} is not an integer >= 0`);
    this.batches++;
    if (tokenCount === 0) return;
    this.tokens += tokenCount;
    const w = tokenCount;
    for (const [name, g] of grads instanceof Map ? grads.entries() : Object.entries(grads)) {
      let sum = this.sums.get(name);
      if (!sum) {
        sum = new Float32Array(g.length);
        this.sums.set(name, sum);
      }
      if (sum.length !== g.length) throw new Error(`GradAccumulator.add: '${name}' has ${g.length} values, earlier ${sum.length}`);
      for (let i = 0, n = g.length; i < n; i++) sum[i] = sum[i]! + w * g[i]!;
    }
  }

  /**
   * The large-batch gradient sum_i (n_i / N) g_i. The arrays are the accumulator's own (no copy): they stay valid
   * until `reset()`, which zeroes and reuses them. Calling `result()` again returns the same arrays.
   */
  result(): Map<string, Float32Array> {
    if (!this.done) {
      if (this.tokens === 0) throw new Error('GradAccumulator.result: no loss tokens were added');
      const inv = 1 / this.tokens;
      for (const sum of this.sums.values()) {
        for (let i = 0, n = sum.length; i < n; i++) sum[i] = sum[i]! * inv;
      }
      this.done = true;
    }
    return new Map(this.sums);
  }

  /** Starts a new accumulation, keeping the buffers (zeroed); `release` also frees them. */
  reset(release = false): void {
    if (release) this.sums.clear();
    else for (const sum of this.sums.values()) sum.fill(0);
    this.tokens = 0;
    this.batches = 0;
    this.done = false;
  }

  /** Bytes held in accumulation buffers. */
  bytes(): number {
    let n = 0;
    for (const a of this.sums.values()) n += a.byteLength;
    return n;
  }
}
