/**
 * The few places where Bun, Deno and Node differ for the library: a module's folder, how to start a script in a
 * child process of the same runtime, and how to resolve a package from a folder. Everything else uses node: APIs,
 * which all three provide.
 */
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

declare const Deno: unknown;

/** The folder of the module whose `import.meta.url` is given (Bun's `import.meta.dir`, anywhere). */
export const moduleDir = (url: string): string => dirname(fileURLToPath(url));

/** Arguments before a script path that make `process.execPath` run it: Deno needs `run -A`; Bun takes it as is. */
export const scriptArgs = (): string[] => (typeof Deno !== 'undefined' ? ['run', '-A'] : []);

/** The file a bare package specifier resolves to from `fromDir`, as an import from a module there would. */
export function resolvePackage(name: string, fromDir: string): string {
  if (typeof Bun !== 'undefined') return Bun.resolveSync(name, fromDir);
  return createRequire(join(fromDir, 'package.json')).resolve(name);
}
