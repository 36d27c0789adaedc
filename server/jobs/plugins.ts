/**
 * The techniques a job may use. A request names plugins only as data: a built-in name (plugins/index.ts) or a
 * package the server allows, each as `"name"` or `{ "name", "options" }`. A path or a package off the allow-list
 * would load code of the client's choosing, so it is refused; so is any other object (resolvePlugins would take it
 * for a plugin object itself).
 */
import { BUILTIN_PLUGINS } from '../../plugins/index.ts';
import type { Problem } from './problems.ts';

/** A plugin as JSON: what the run config and the worker's spec carry. */
export type JsonPluginEntry = string | { name: string; options: Record<string, unknown> };

/** LoRA on every linear layer, r 8, alpha 16: the technique of a request that names none (PEFT's usual recipe). */
export const DEFAULT_TECHNIQUE = { name: 'lora', options: { r: 8, alpha: 16, targets: 'all-linear' } } as const satisfies JsonPluginEntry;

/**
 * Built-ins that change how another technique trains but train nothing themselves: NF4 and int8 quantise the frozen
 * base, ZO and forward-gradient replace backprop. A request with only these gets the default technique added.
 */
export const MODIFIERS: ReadonlySet<string> = new Set(['nf4', 'int8', 'zo', 'forward-grad']);
/** Modifiers that supply the gradient estimator: they follow the technique in the list (`[lora(), zo()]`). */
const ESTIMATORS: ReadonlySet<string> = new Set(['zo', 'forward-grad']);

/** A module path or URL of any kind (`./x`, `/x`, `~/x`, `C:\x`, `file:x`): never loaded for a request. */
export function isPathLike(name: string): boolean {
  return /^[./~\\]/.test(name) || /^[A-Za-z][\w+.-]*:/.test(name) || name.includes('\\') || name.includes('\0') || name.split('/').includes('..');
}

const isPlainObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

export const entryName = (e: JsonPluginEntry): string => (typeof e === 'string' ? e : e.name);

function available(allowed: readonly string[]): string {
  const packages = allowed.length ? `; allowed packages: ${allowed.join(', ')}` : '';
  return `built-ins: ${Object.keys(BUILTIN_PLUGINS).join(', ')}${packages}`;
}

/** One entry checked; built-in options are validated by the plugin's own factory (pure: it only parses them). */
function checkEntry(entry: unknown, param: string, allowed: readonly string[]): { entry: JsonPluginEntry } | { problem: Problem } {
  let name: unknown;
  let options: unknown = {};
  if (typeof entry === 'string') name = entry;
  else if (isPlainObject(entry) && Object.keys(entry).every((k) => k === 'name' || k === 'options')) ({ name, options = {} } = entry);
  else return { problem: { param, message: `a plugin is given as a name ("lora") or as { "name": "lora", "options": {...} }, nothing else (${available(allowed)})` } };
  if (typeof name !== 'string' || name === '') return { problem: { param: `${param}.name`, message: `expected a plugin name (${available(allowed)})` } };
  if (!isPlainObject(options)) return { problem: { param: `${param}.options`, message: 'expected an object of plugin options' } };
  if (isPathLike(name)) {
    return { problem: { param, message: `'${name}' is a path: a request may not load code from this machine; name a plugin instead (${available(allowed)})` } };
  }
  const builtin = BUILTIN_PLUGINS[name];
  if (!builtin && !allowed.includes(name)) return { problem: { param, message: `plugin '${name}' is not available on this server (${available(allowed)})` } };
  if (builtin) {
    try {
      builtin(options);
    } catch (e) {
      return { problem: { param: `${param}.options`, message: `plugin '${name}': ${(e as Error).message.replace(/\s*\n\s*/g, '; ')}` } };
    }
  }
  return { entry: { name, options } };
}

/** The plugins of a request (`tuneforge.plugins`), checked, with the default technique added where none is named. */
export function mapPlugins(entries: readonly unknown[] | undefined, allowed: readonly string[]): { plugins: JsonPluginEntry[]; problems: Problem[] } {
  const plugins: JsonPluginEntry[] = [];
  const problems: Problem[] = [];
  for (const [i, e] of (entries ?? []).entries()) {
    const r = checkEntry(e, `tuneforge.plugins[${i}]`, allowed);
    if ('problem' in r) problems.push(r.problem);
    else plugins.push(r.entry);
  }
  if (problems.length || plugins.some((p) => !MODIFIERS.has(entryName(p)))) return { plugins, problems };
  const at = plugins.findIndex((p) => ESTIMATORS.has(entryName(p)));
  plugins.splice(at < 0 ? plugins.length : at, 0, structuredClone(DEFAULT_TECHNIQUE));
  return { plugins, problems };
}
