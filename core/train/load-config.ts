/** Reads a config file (.ts/.js default export, or .json) and turns plugin references into plugin objects. */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Plugin } from '../plugin/hooks.ts';
import { resolvePackage } from '../runtime.ts';
import { parseTrainConfig, type PluginEntry, type TrainConfig } from './config.ts';

/** A plugin factory: options in, plugin out. Built-ins and npm packages export one. */
export type PluginFactory = (options?: Record<string, unknown>) => Plugin;

export interface ResolveOptions {
  /** Plugins known by a short name (`lora`, `full`). */
  builtins: Readonly<Record<string, PluginFactory>>;
  /** Where relative module paths and package names are resolved from (the config file's folder). */
  baseDir: string;
}

function factoryOf(mod: Record<string, unknown>, where: string): PluginFactory {
  const candidate = mod.default ?? mod.plugin;
  if (typeof candidate === 'function') return candidate as PluginFactory;
  throw new Error(`${where}: expected a default export (or an export named 'plugin') that is a plugin factory function`);
}

/** Turns every entry into a plugin object. Entries may be objects already, names, or `{ name, options }`. */
export async function resolvePlugins(entries: readonly PluginEntry[], opts: ResolveOptions): Promise<Plugin[]> {
  const out: Plugin[] = [];
  const problems: string[] = [];
  for (const [i, entry] of entries.entries()) {
    // A reference is a name or exactly { name, options }; anything else with a name is a plugin object already.
    const isReference = typeof entry === 'string' || Object.keys(entry).every((k) => k === 'name' || k === 'options');
    if (!isReference) {
      out.push(entry as Plugin);
      continue;
    }
    const { name, options } = typeof entry === 'string' ? { name: entry, options: {} } : (entry as { name: string; options: Record<string, unknown> });
    try {
      const builtin = opts.builtins[name];
      if (builtin) {
        out.push(builtin(options));
        continue;
      }
      const local = name.startsWith('.') || isAbsolute(name);
      const specifier = local ? resolve(opts.baseDir, name) : resolvePackage(name, opts.baseDir);
      const mod = (await import(local ? pathToFileURL(specifier).href : specifier)) as Record<string, unknown>;
      out.push(factoryOf(mod, `plugin '${name}'`)(options));
    } catch (e) {
      const known = Object.keys(opts.builtins).join(', ');
      problems.push(`plugins[${i}] ('${name}'): ${(e as Error).message.split('\n')[0]} (built-ins: ${known}; otherwise an installed package or a path)`);
    }
  }
  if (problems.length) throw new Error(`cannot load plugins:\n  ${problems.join('\n  ')}`);
  return out;
}

/** Paths in a config file are relative to the file; a model source stays a Hub id unless such a folder exists. */
function resolvePaths(config: TrainConfig, dir: string): TrainConfig {
  const file = (p: string) => (isAbsolute(p) ? p : resolve(dir, p));
  const files = (p: string | string[] | undefined) => (p === undefined ? undefined : Array.isArray(p) ? p.map(file) : file(p));
  const localModel = resolve(dir, config.model);
  const choice = config.task.choice;
  return {
    ...config,
    model: existsSync(localModel) ? localModel : config.model,
    output: file(config.output),
    data: { ...config.data, train: files(config.data.train), eval: files(config.data.eval) },
    task: choice ? { ...config.task, choice: { ...choice, trainFile: files(choice.trainFile)!, evalFile: files(choice.evalFile) } } : config.task,
  };
}

/** Loads and validates a config file, resolving paths against its folder and plugins through `builtins`. */
export async function loadConfigFile(path: string, builtins: ResolveOptions['builtins']): Promise<{ config: TrainConfig; plugins: Plugin[] }> {
  const abs = resolve(path);
  if (!existsSync(abs)) throw new Error(`config file ${abs} does not exist`);
  let raw: unknown;
  if (abs.endsWith('.json')) {
    try {
      raw = JSON.parse(readFileSync(abs, 'utf8'));
    } catch (e) {
      throw new Error(`${abs}: invalid JSON (${(e as Error).message})`);
    }
  } else {
    const mod = (await import(pathToFileURL(abs).href)) as { default?: unknown };
    if (mod.default === undefined) throw new Error(`${abs}: no default export; write \`export default defineConfig({...})\``);
    raw = mod.default;
  }
  const config = resolvePaths(parseTrainConfig(raw, abs), dirname(abs));
  return { config, plugins: await resolvePlugins(config.plugins, { builtins, baseDir: dirname(abs) }) };
}

/** Validates an in-memory config (e.g. from the HTTP API), with paths relative to `baseDir`. */
export async function loadConfigObject(value: unknown, builtins: ResolveOptions['builtins'], baseDir = process.cwd()): Promise<{ config: TrainConfig; plugins: Plugin[] }> {
  const config = resolvePaths(parseTrainConfig(value), baseDir);
  return { config, plugins: await resolvePlugins(config.plugins, { builtins, baseDir }) };
}
