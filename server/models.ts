/**
 * Which base models jobs and completions may name: local folders allowed with `--allow-model` (by folder name or by
 * the path as given), and Hugging Face Hub ids (`owner/name[@rev]`) unless the server is offline. Nothing else: a
 * request never chooses a path on this machine.
 */
import { existsSync } from 'node:fs';
import { basename, resolve } from 'node:path';
import { HUB_ID, looksLikePath } from './jobs/model.ts';

export interface BaseModel {
  /** The name requests use. */
  id: string;
  /** A local folder, or undefined for a Hub id (downloaded into the Hugging Face cache). */
  dir?: string;
}

export interface ModelPolicy {
  /** Allowed local folders by id. */
  readonly local: ReadonlyMap<string, string>;
  readonly offline: boolean;
  /** The model a request names, or a reason it may not be used. */
  resolve(name: string): { model: BaseModel } | { error: string };
}

export function modelPolicy(allowModels: readonly string[], offline: boolean): ModelPolicy {
  const local = new Map<string, string>();
  for (const given of allowModels) {
    const dir = resolve(given);
    if (!existsSync(`${dir}/config.json`)) throw new Error(`--allow-model ${given}: no config.json in ${dir}`);
    local.set(basename(dir), dir);
    local.set(given, dir);
  }
  return {
    local,
    offline,
    resolve(name) {
      const dir = local.get(name);
      if (dir) return { model: { id: name, dir } };
      const allowed = [...new Set([...local.keys()].filter((k) => !k.includes('/') || !local.has(basename(k))))];
      if (looksLikePath(name)) {
        return { error: `model '${name}' is a path; name an allowed model instead (${allowed.join(', ') || 'none configured'})` };
      }
      if (HUB_ID.test(name)) {
        if (offline) return { error: `model '${name}' is a Hub id, but this server is offline; allowed: ${allowed.join(', ') || 'none'}` };
        return { model: { id: name } };
      }
      return { error: `unknown model '${name}'; allowed: ${allowed.join(', ') || 'none'}${offline ? '' : ', or a Hugging Face Hub id (owner/name)'}` };
    },
  };
}
