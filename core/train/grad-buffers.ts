/**
 * One gradient array per trainable parameter, kept from step to step: the gradient graph writes into them (run's
 * `into`) instead of returning new arrays. A SmolLM2-135M full fine-tuning step returns 538 MB of gradients; as new
 * outputs, onnxruntime allocates them, the binding copies them into fresh JavaScript buffers and both are
 * page-faulted again every step. Made only when an estimator asks (zeroth-order ones never do).
 */
export class GradBuffers {
  private readonly arrays = new Map<string, Float32Array>();

  /** Drops the arrays of parameters no longer trained (LISA's switches), so their memory goes back. */
  retain(names: readonly string[]): void {
    for (const name of [...this.arrays.keys()]) if (!names.includes(name)) this.arrays.delete(name);
  }

  /** The array for a parameter's gradient of `length` elements, made on first use. */
  get(name: string, length: number): Float32Array {
    let a = this.arrays.get(name);
    if (a?.length !== length) this.arrays.set(name, (a = new Float32Array(length)));
    return a;
  }

  /** Whether `a` is the kept array of `name` (not to be freed with a step's other gradients). */
  owns(name: string, a: Float32Array): boolean {
    return this.arrays.get(name) === a;
  }
}
