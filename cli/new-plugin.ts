/** `tuneforge new plugin <name>`: a plugin package that passes its own tests straight away (cli/scaffold). */
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { pluginTemplate } from './scaffold/plugin-template.ts';

/** npm's rules for a package name, in short: lowercase, URL-safe, optionally scoped. */
const NPM_NAME = /^(@[a-z0-9][a-z0-9._~-]*\/)?[a-z0-9][a-z0-9._~-]*$/;

export function newPluginCommand(o: { name: string; dir?: string; log?: (l: string) => void }): string {
  const log = o.log ?? ((l: string) => console.log(l));
  if (!NPM_NAME.test(o.name) || o.name.length > 214) {
    throw new Error(`'${o.name}' is not a valid npm package name: use lowercase letters, digits, '-', '.', '_' (optionally @scope/name), e.g. tuneforge-plugin-ia3`);
  }
  const dir = resolve(o.dir ?? o.name.replace(/^@[^/]+\//, ''));
  if (existsSync(dir) && readdirSync(dir).length > 0) throw new Error(`${dir} exists and is not empty: choose another name or --dir`);
  const own = JSON.parse(readFileSync(join(import.meta.dir, '..', 'package.json'), 'utf8')) as { version: string };
  const files = pluginTemplate({ packageName: o.name, tuneforgeRange: `>=${own.version}` });
  for (const [rel, content] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, rel)), { recursive: true });
    writeFileSync(join(dir, rel), content);
  }
  log(`created ${dir}: ${Object.keys(files).join(', ')}`);
  log(`next: cd ${o.dir ?? o.name.replace(/^@[^/]+\//, '')} && bun test   (tuneforge must be installed in this project or a parent folder)`);
  return dir;
}
