/**
 * The sidecar's table of loaded sessions: at most `maxSessions` (loads in progress count), one call at a time on
 * each (onnxruntime sessions are not re-entrant here), and a session not used for `idleTimeoutMs` released (a client
 * that died without releasing).
 */
import { randomUUID } from 'node:crypto';
import { TensorStore, type HoldingSession } from './holding.ts';
import type { RunnerSession } from './types.ts';

/** A refusal with its HTTP status and machine-readable code. */
export class HttpError extends Error {
  constructor(readonly status: number, readonly code: string, message: string) {
    super(message);
  }
}

export type SidecarSession = RunnerSession | HoldingSession;

interface Entry {
  session: SidecarSession;
  lastUsed: number;
  /** The last call queued on the session: the next one starts after it. */
  queue: Promise<unknown>;
  /** The id of the store it holds in, if any. */
  store?: string;
}

export class SessionTable {
  private readonly sessions = new Map<string, Entry>();
  private loading = 0;
  /** Bytes of fed-back outputs held by all sessions (runners/holding.ts). */
  heldBytes = 0;
  private readonly sweeper: ReturnType<typeof setInterval>;
  /** Stores by id, with the sessions holding in each: a store goes when its last session does. */
  private readonly stores = new Map<string, { store: TensorStore; sessions: Set<string> }>();

  constructor(private readonly limits: { maxSessions: number; idleTimeoutMs: number; maxHeldBytes: number }, private readonly log: (line: string) => void) {
    this.sweeper = setInterval(() => void this.sweep(), Math.max(50, Math.min(limits.idleTimeoutMs / 4, 60_000)));
    (this.sweeper as { unref?: () => void }).unref?.();
  }

  get size(): number {
    return this.sessions.size;
  }

  /** Holds a place for a session being loaded (429 when the table is full); call the result when the load ends. */
  reserve(): () => void {
    if (this.sessions.size + this.loading >= this.limits.maxSessions) {
      throw new HttpError(429, 'too_many_sessions', `the sidecar holds ${this.sessions.size} sessions${this.loading ? ` (+${this.loading} loading)` : ''}, its limit (--max-sessions ${this.limits.maxSessions}): release some, or raise the limit`);
    }
    this.loading++;
    return () => { this.loading--; };
  }

  /** A change of the bytes held; more than `maxHeldBytes` in all is refused (507), and nothing changes. */
  accountHeld(deltaBytes: number): void {
    if (deltaBytes > 0 && this.heldBytes + deltaBytes > this.limits.maxHeldBytes) {
      throw new HttpError(507, 'held_limit', `holding ${deltaBytes} more bytes of fed-back outputs would exceed the sidecar's limit of ${this.limits.maxHeldBytes} (${this.heldBytes} held; --max-held): release sessions, or raise the limit`);
    }
    this.heldBytes += deltaBytes;
  }

  /** The store of this id, made empty on first use. */
  store(id: string): TensorStore {
    let s = this.stores.get(id);
    if (!s) this.stores.set(id, (s = { store: new TensorStore(id), sessions: new Set() }));
    return s.store;
  }

  /** Adds a loaded session (holding in store `store`, if given); returns its id (random, so ids cannot be guessed). */
  add(session: SidecarSession, store?: string): string {
    const id = randomUUID();
    this.sessions.set(id, { session, lastUsed: Date.now(), queue: Promise.resolve(), ...(store ? { store } : {}) });
    if (store) {
      this.store(store);
      this.stores.get(store)!.sessions.add(id);
    }
    return id;
  }

  /** 404 for an unknown id (before a request's body is read). */
  check(id: string): void {
    this.entry(id);
  }

  /** Runs `f` on a session once the calls queued before it are done (404 for an unknown id). */
  use<T>(id: string, f: (session: SidecarSession) => Promise<T>): Promise<T> {
    const h = this.entry(id);
    h.lastUsed = Date.now();
    const result = h.queue.then(() => f(h.session)).finally(() => { h.lastUsed = Date.now(); });
    h.queue = result.catch(() => {});
    return result;
  }

  /** Removes a session and releases it once a call in flight has finished. */
  async release(id: string): Promise<void> {
    const h = this.entry(id);
    this.sessions.delete(id);
    await this.releaseEntry(id, h);
  }

  /** Releases every session and stops the idle sweep. */
  async close(): Promise<void> {
    clearInterval(this.sweeper);
    const all = [...this.sessions];
    this.sessions.clear();
    for (const [id, h] of all) await this.releaseEntry(id, h);
  }

  /** Releases a session once its call in flight is done; the last session of a store frees the store. */
  private async releaseEntry(id: string, h: Entry): Promise<void> {
    await h.queue;
    await h.session.release();
    const s = h.store ? this.stores.get(h.store) : undefined;
    if (!s) return;
    s.sessions.delete(id);
    if (s.sessions.size > 0) return;
    this.stores.delete(h.store!);
    this.accountHeld(-s.store.bytes());
    this.log(`sidecar: store '${h.store}' freed with its last session`);
  }

  private entry(id: string): Entry {
    const h = this.sessions.get(id);
    if (!h) throw new HttpError(404, 'unknown_session', `no session '${id}' here: it was released, idled out (--idle-timeout ${this.limits.idleTimeoutMs / 1000} s), or the sidecar restarted since it was loaded`);
    return h;
  }

  private async sweep(): Promise<void> {
    const now = Date.now();
    for (const [id, h] of this.sessions) {
      if (now - h.lastUsed < this.limits.idleTimeoutMs) continue;
      this.sessions.delete(id);
      this.log(`sidecar: session ${id} released after ${((now - h.lastUsed) / 1000).toFixed(0)} s idle`);
      await this.releaseEntry(id, h);
    }
  }
}
