/**
 * Runs tasks one at a time, in arrival order: a generator decodes one sequence at a time (its session and weights
 * are shared), so requests to one model wait their turn instead of interleaving.
 *
 * ```ts
 * const q = new SerialQueue(16);
 * const text = await q.run(() => generate(...));
 * ```
 */
export class SerialQueueFullError extends Error {}

export class SerialQueue {
  private tail: Promise<unknown> = Promise.resolve();
  private queued = 0;

  /** `depth`: tasks that may wait behind the running one before `run` refuses more. */
  constructor(private readonly depth = Infinity) {}

  /** Tasks waiting or running. */
  get size(): number {
    return this.queued;
  }

  /** True when `run` would refuse a task now. */
  get full(): boolean {
    return this.queued > this.depth;
  }

  /** Runs `task` after every task given before it has settled; throws SerialQueueFullError when the queue is full. */
  run<T>(task: () => Promise<T>): Promise<T> {
    if (this.full) return Promise.reject(new SerialQueueFullError(`${this.queued} tasks are already waiting`));
    this.queued++;
    const result = this.tail.then(task).finally(() => this.queued--);
    this.tail = result.catch(() => undefined); // one task's failure must not fail the ones behind it
    return result;
  }
}
