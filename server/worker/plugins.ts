/**
 * The child's side of the plugin rules (server/jobs/plugins.ts checks them at the request already): entries are
 * data only, names resolve to the built-ins or to packages on the allow-list, never to a path. Checked again here
 * because a spec is a file on disk, and the child is what would run the code.
 */
import { join } from 'node:path';
import type { Plugin } from '../../core/plugin/hooks.ts';
import { resolvePlugins } from '../../core/train/load-config.ts';
import { BUILTIN_PLUGINS } from '../../plugins/index.ts';
import { isPathLike, type JsonPluginEntry } from '../jobs/plugins.ts';

/**
 * Packages resolve from the package root: the repository's node_modules, or, where tuneforge is installed as a
 * dependency, the project's (node resolution walks up from node_modules/tuneforge).
 */
export const PACKAGE_ROOT = join(import.meta.dir, '../..');

export async function resolveJobPlugins(entries: readonly unknown[], allowedPackages: readonly string[]): Promise<Plugin[]> {
  const problems: string[] = [];
  const checked: JsonPluginEntry[] = [];
  for (const [i, entry] of entries.entries()) {
    const isRef = typeof entry === 'string' || (typeof entry === 'object' && entry !== null && Object.keys(entry).every((k) => k === 'name' || k === 'options'));
    const name = typeof entry === 'string' ? entry : isRef ? (entry as { name?: unknown }).name : undefined;
    if (!isRef || typeof name !== 'string') problems.push(`plugins[${i}]: expected a name or { name, options }`);
    else if (isPathLike(name)) problems.push(`plugins[${i}]: '${name}' is a path; a job may only name plugins`);
    else if (!(name in BUILTIN_PLUGINS) && !allowedPackages.includes(name)) problems.push(`plugins[${i}]: '${name}' is neither a built-in nor an allowed package`);
    else checked.push(entry as JsonPluginEntry);
  }
  if (problems.length) throw new Error(`cannot load plugins:\n  ${problems.join('\n  ')}`);
  return resolvePlugins(checked.map((e) => (typeof e === 'string' ? e : { name: e.name, options: e.options ?? {} })), { builtins: BUILTIN_PLUGINS, baseDir: PACKAGE_ROOT });
}
