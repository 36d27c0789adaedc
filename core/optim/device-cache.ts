/**
 * The device optimizer's compiled update graphs, by signature: each compiled once and kept while in use; beyond
 * the cache's size the least recently used is released, after `beforeEvict` (which brings back what its session
 * holds).
 */
import type { Executable } from '../compile.ts';
import { compile } from '../compile.ts';
import type { Graph } from '../ir/graph.ts';
import type { Runner } from '../../runners/types.ts';

/** Compiled graphs kept at least (LISA's switches, `update` of single tensors). */
const CACHE_MIN = 16;

export class GraphCache {
  /** Oldest first (re-inserted on use). */
  private readonly entries = new Map<string, Promise<Executable>>();
  private limit = CACHE_MIN;

  constructor(private readonly runner: () => Promise<Runner | undefined>, private readonly beforeEvict: (key: string) => Promise<void>) {}

  /** Keeps at least `count` graphs (twice a step's, so a step never evicts its own). */
  reserve(count: number): void {
    this.limit = Math.max(this.limit, count);
  }

  /** The session of an already compiled graph (a held state's), if still cached. */
  peek(key: string): Promise<Executable> | undefined {
    return this.entries.get(key);
  }

  async get(key: string, graph: () => Graph, feedback?: Record<string, string>): Promise<Executable> {
    let hit = this.entries.get(key);
    if (hit) this.entries.delete(key);
    else {
      const runner = await this.runner();
      hit = compile(graph(), { ...(runner ? { runner } : {}), ...(feedback ? { feedback } : {}) });
    }
    this.entries.set(key, hit);
    while (this.entries.size > this.limit) {
      const [oldest, exe] = this.entries.entries().next().value!;
      await this.beforeEvict(oldest);
      this.entries.delete(oldest);
      void exe.then((e) => e.release());
    }
    return hit;
  }

  async release(): Promise<void> {
    const exes = [...this.entries.values()];
    this.entries.clear();
    for (const exe of exes) await (await exe).release();
  }
}
