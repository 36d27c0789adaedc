/**
 * A few expensive values (loaded generators) by key, least recently used evicted first. Values are leased: an evicted
 * value is disposed only once its last lease is released, so a request never loses its generator mid-generation;
 * concurrent requests for a key still loading share the one load.
 *
 * ```ts
 * const pool = new LruPool(2, (g: Generator) => g.release());
 * const lease = await pool.acquire(key, () => createGenerator(...));
 * try { ... lease.value ... } finally { lease.release(); }
 * ```
 */
export interface Lease<V> {
  readonly value: V;
  /** Gives the value back (once; later calls do nothing). */
  release(): void;
}

interface Entry<V> {
  readonly value: Promise<V>;
  users: number;
  evicted: boolean;
}

export class LruPool<V> {
  private readonly entries = new Map<string, Entry<V>>();

  constructor(
    private readonly capacity: number,
    private readonly dispose: (value: V) => Promise<void>,
    private readonly onDisposeError: (e: unknown) => void = (e) => console.error(e),
  ) {}

  /** Keys loaded or loading, least recently used first. */
  keys(): string[] {
    return [...this.entries.keys()];
  }

  async acquire(key: string, load: () => Promise<V>): Promise<Lease<V>> {
    let entry = this.entries.get(key);
    if (entry) this.entries.delete(key); // re-inserted below: Map order is the recency order
    else entry = { value: load(), users: 0, evicted: false };
    this.entries.set(key, entry);
    entry.users++;
    this.evictOverCapacity();
    let value: V;
    try {
      value = await entry.value;
    } catch (e) {
      entry.users--;
      if (this.entries.get(key) === entry) this.entries.delete(key); // a failed load is not cached: the next request retries
      throw e;
    }
    let released = false;
    return {
      value,
      release: () => {
        if (released) return;
        released = true;
        entry.users--;
        if (entry.evicted && entry.users === 0) this.disposeEntry(entry);
      },
    };
  }

  /** Evicts everything; values still leased are disposed when released. */
  async clear(): Promise<void> {
    const idle: Promise<void>[] = [];
    for (const [key, entry] of this.entries) {
      this.entries.delete(key);
      entry.evicted = true;
      if (entry.users === 0) idle.push(this.disposeEntry(entry));
    }
    await Promise.all(idle);
  }

  private evictOverCapacity(): void {
    for (const [key, entry] of this.entries) {
      if (this.entries.size <= this.capacity) break;
      this.entries.delete(key);
      entry.evicted = true;
      if (entry.users === 0) void this.disposeEntry(entry);
    }
  }

  private disposeEntry(entry: Entry<V>): Promise<void> {
    // A load that failed has nothing to dispose; its error went to the requests that waited for it.
    return entry.value.then((v) => this.dispose(v), () => undefined).catch(this.onDisposeError);
  }
}
