/**
 * Runs plugins' hooks in a fixed order (`enforce: 'pre'`, then unmarked, then `'post'`; config order within each
 * group) with each hook's declared calling style, and validates a combination before anything runs.
 */
import { seededRandom } from '../generate/sampling.ts';
import type { PluginContext } from './context.ts';
import type { ModelHooks } from '../models/llama.ts';
import * as nn from '../nn/index.ts';
import { HOOK_STYLES, type AttentionFn, type EmbeddingsFn, type HookName, type LinearFn, type ParamFn, type Plugin, type PluginHooks } from './hooks.ts';

type Args<K extends HookName> = Parameters<PluginHooks[K]>;
type Ret<K extends HookName> = Exclude<Awaited<ReturnType<PluginHooks[K]>>, void | undefined | null>;

function editDistance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...new Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0]![j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      d[i]![j] = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
  }
  return d[a.length]![b.length]!;
}

/** Plugins sorted by `enforce`, stably. */
export function orderPlugins(plugins: readonly Plugin[]): Plugin[] {
  const rank = (p: Plugin) => (p.enforce === 'pre' ? 0 : p.enforce === 'post' ? 2 : 1);
  return plugins.map((p, i) => ({ p, i })).sort((a, b) => rank(a.p) - rank(b.p) || a.i - b.i).map((x) => x.p);
}

/** Structural problems of a combination: names, unknown hooks (typos), requires / conflicts. All at once. */
export function structuralProblems(plugins: readonly Plugin[]): string[] {
  const problems: string[] = [];
  const names = new Set<string>();
  const known = Object.keys(HOOK_STYLES);
  plugins.forEach((p, i) => {
    if (!p || typeof p !== 'object' || typeof p.name !== 'string' || !p.name) {
      problems.push(`plugins[${i}]: not a plugin (expected an object with a 'name'; did you forget to call the factory?)`);
      return;
    }
    if (names.has(p.name)) problems.push(`plugins[${i}]: '${p.name}' appears twice`);
    names.add(p.name);
    if (p.enforce !== undefined && p.enforce !== 'pre' && p.enforce !== 'post') {
      problems.push(`plugin '${p.name}': enforce must be 'pre' or 'post', got ${JSON.stringify(p.enforce)}`);
    }
    for (const key of Object.keys(p)) {
      if (!key.includes(':') || known.includes(key)) continue;
      const near = known.filter((k) => editDistance(k, key) <= 3).sort((a, b) => editDistance(a, key) - editDistance(b, key));
      problems.push(`plugin '${p.name}': unknown hook '${key}'${near.length ? ` (did you mean '${near[0]}'?)` : ''}`);
    }
    for (const key of known) {
      const v = (p as unknown as Record<string, unknown>)[key];
      if (v !== undefined && typeof v !== 'function') problems.push(`plugin '${p.name}': hook '${key}' must be a function`);
    }
  });
  for (const p of plugins) {
    if (!p?.name) continue;
    for (const r of p.requires ?? []) if (!names.has(r)) problems.push(`plugin '${p.name}' requires '${r}', which is not in the plugin list`);
    for (const c of p.conflicts ?? []) if (names.has(c)) problems.push(`plugin '${p.name}' cannot be combined with '${c}'`);
  }
  return problems;
}

export class PluginDriver {
  readonly plugins: readonly Plugin[];

  constructor(plugins: readonly Plugin[]) {
    const problems = structuralProblems(plugins);
    if (problems.length) throw new PluginError(problems);
    this.plugins = orderPlugins(plugins);
  }

  private with<K extends HookName>(name: K): { plugin: Plugin; fn: (...a: Args<K>) => ReturnType<PluginHooks[K]> }[] {
    const out: { plugin: Plugin; fn: (...a: Args<K>) => ReturnType<PluginHooks[K]> }[] = [];
    for (const plugin of this.plugins) {
      const fn = plugin[name] as ((...a: Args<K>) => ReturnType<PluginHooks[K]>) | undefined;
      if (fn) out.push({ plugin, fn: fn.bind(plugin) as (...a: Args<K>) => ReturnType<PluginHooks[K]> });
    }
    return out;
  }

  /** Context bound to one plugin: its log lines carry its name, and a step context gets its own random stream. */
  private bind<C extends PluginContext>(ctx: C, plugin: Plugin): C {
    const bound = { ...ctx, log: (m: string) => ctx.log(`[${plugin.name}] ${m}`) };
    if ('stepSeed' in ctx && typeof ctx.stepSeed === 'number') {
      const salt = [...plugin.name].reduce((h, c) => Math.imul(h ^ c.charCodeAt(0), 16777619) >>> 0, 2166136261);
      Object.assign(bound, { random: seededRandom((ctx.stepSeed ^ salt) >>> 0) });
    }
    return bound;
  }

  api<Api>(name: string): Api | undefined {
    return this.plugins.find((p) => p.name === name)?.api as Api | undefined;
  }

  /** collect: every plugin's non-empty result, tagged with the plugin's name. */
  async collect<K extends HookName>(name: K, ctx: PluginContext, ...rest: Tail<Args<K>>): Promise<{ plugin: string; value: NonNullable<Awaited<Ret<K>>> }[]> {
    const out: { plugin: string; value: NonNullable<Awaited<Ret<K>>> }[] = [];
    for (const { plugin, fn } of this.with(name)) {
      const value = (await fn(...([this.bind(ctx, plugin), ...rest] as unknown as Args<K>))) as Awaited<Ret<K>>;
      if (value !== undefined && value !== null) out.push({ plugin: plugin.name, value: value as NonNullable<Awaited<Ret<K>>> });
    }
    return out;
  }

  /** sequential: every plugin, in order, awaited. */
  async sequential<K extends HookName>(name: K, ctx: PluginContext, ...rest: Tail<Args<K>>): Promise<void> {
    for (const { plugin, fn } of this.with(name)) await fn(...([this.bind(ctx, plugin), ...rest] as unknown as Args<K>));
  }

  /** first: the first non-undefined result. */
  async first<K extends HookName>(name: K, ctx: PluginContext, ...rest: Tail<Args<K>>): Promise<{ plugin: string; value: NonNullable<Ret<K>> } | undefined> {
    for (const { plugin, fn } of this.with(name)) {
      const value = (await fn(...([this.bind(ctx, plugin), ...rest] as unknown as Args<K>))) as Ret<K>;
      if (value !== undefined && value !== null) return { plugin: plugin.name, value: value as NonNullable<Ret<K>> };
    }
    return undefined;
  }

  /** waterfall: each plugin transforms the previous value (synchronous, for graph building). */
  waterfallSync<K extends 'model:loss' | 'params:trainable' | 'export:base' | 'export:merge'>(
    name: K, ctx: PluginContext, initial: Args<K>[1], ...rest: Tail<Tail<Args<K>>>
  ): Args<K>[1] {
    let value = initial;
    for (const { plugin, fn } of this.with(name)) {
      value = fn(...([this.bind(ctx, plugin), value, ...rest] as unknown as Args<K>)) as unknown as Args<K>[1];
    }
    return value;
  }

  /** chain: the composed linear layer, outermost plugin first, the default innermost. */
  linear(ctx: PluginContext, base: LinearFn): LinearFn {
    return this.with('model:linear').reduceRight<LinearFn>(
      (next, { plugin, fn }) => (site, x, w, b) => fn(this.bind(ctx, plugin), site, x, w, b, next),
      base,
    );
  }

  /** chain: the composed parameter source. */
  param(ctx: PluginContext, base: ParamFn): ParamFn {
    return this.with('model:param').reduceRight<ParamFn>(
      (next, { plugin, fn }) => (g, name, shape) => fn(this.bind(ctx, plugin), g, name, shape, next),
      base,
    );
  }

  /** chain: the composed embeddings hook (default: unchanged). */
  embeddings(ctx: PluginContext): EmbeddingsFn | undefined {
    const hooks = this.with('model:embeddings');
    if (!hooks.length) return undefined;
    return hooks.reduceRight<EmbeddingsFn>((next, { plugin, fn }) => (e) => fn(this.bind(ctx, plugin), e, next), (e) => e);
  }

  /** chain: the composed attention hook (default: unchanged). */
  attention(ctx: PluginContext): AttentionFn | undefined {
    const hooks = this.with('model:attention');
    if (!hooks.length) return undefined;
    return hooks.reduceRight<AttentionFn>((next, { plugin, fn }) => (a) => fn(this.bind(ctx, plugin), a, next), (a) => a);
  }

  /** Every model hook of the plugins, composed, for `buildCausalLM` (training, evaluation and generation alike). */
  modelHooks(ctx: PluginContext): ModelHooks {
    return {
      linear: this.linear(ctx, (_site, x, w, b) => nn.linear(x, w, b)),
      param: this.param(ctx, (g, name, shape) => g.input(name, 'float32', shape)),
      embeddings: this.embeddings(ctx),
      attention: this.attention(ctx),
    };
  }

  /** Runs `config:validate` everywhere (plus the caller's `extra` problems); throws PluginError listing everything. */
  async validate(ctx: PluginContext, extra: readonly string[] = []): Promise<void> {
    const found = await this.collect('config:validate', ctx);
    const problems = [...found.flatMap(({ plugin, value }) => value.map((m) => `plugin '${plugin}': ${m}`)), ...extra];
    if (problems.length) throw new PluginError(problems);
  }
}

type Tail<T extends readonly unknown[]> = T extends readonly [unknown, ...infer R] ? R : never;

/** Every problem with a plugin combination, listed together. */
export class PluginError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(`invalid plugin configuration (${problems.length} problem${problems.length === 1 ? '' : 's'}):\n  ${problems.join('\n  ')}`);
    this.name = 'PluginError';
  }
}
