/**
 * Tells a job's streams that it has news. Within one server a notification is immediate; with a shared Postgres
 * store another server's events arrive at the next poll, so streams also look every `pollMs`.
 */
export class EventHub {
  private readonly waiters = new Map<string, Set<() => void>>();

  notify(jobId: string): void {
    const set = this.waiters.get(jobId);
    if (!set) return;
    this.waiters.delete(jobId);
    for (const wake of set) wake();
  }

  /** Resolves on the job's next notification, after `ms` at the latest, or when `signal` aborts. */
  wait(jobId: string, ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise((done) => {
      let set = this.waiters.get(jobId);
      if (!set) this.waiters.set(jobId, (set = new Set()));
      const wake = () => {
        clearTimeout(timer);
        set!.delete(wake);
        signal?.removeEventListener('abort', wake);
        done();
      };
      const timer = setTimeout(wake, ms);
      set.add(wake);
      signal?.addEventListener('abort', wake, { once: true });
    });
  }
}
