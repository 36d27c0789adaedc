/**
 * The `model` of a job request → the run's model source. A request never chooses a path on this machine: it names
 * a model the server allows (mapped to a local folder by the server), or, when the server is online, a Hugging Face
 * Hub id. The child process that trains runs in an empty folder, so a Hub id is never read as a relative path.
 */
import { isAbsolute, relative, resolve } from 'node:path';

export interface ModelPolicy {
  /** Folders local models must lie in (a resolver that maps a name elsewhere is a server misconfiguration). */
  allowedModelDirs: readonly string[];
  /** Refuse Hub ids (nothing is downloaded). */
  offline: boolean;
}

/** `owner/name[@revision]`, each part starting with a letter or digit (also server/models.ts's policy). */
export const HUB_ID = /^[A-Za-z0-9][\w.-]{0,95}\/[A-Za-z0-9][\w.-]{0,95}(@[\w./-]{1,64})?$/;

/** Anything that reads as a file system path: absolute, relative (`.`/`..`), home (`~`), Windows, a NUL byte. */
export function looksLikePath(name: string): boolean {
  return /^[./~\\]/.test(name) || /^[A-Za-z]:/.test(name) || name.includes('\\') || name.includes('\0') || name.split(/[/@]/).includes('..');
}

function inside(dir: string, folder: string): boolean {
  const rel = relative(resolve(dir), resolve(folder));
  return rel === '' || (!rel.startsWith('..') && !isAbsolute(rel));
}

/** The model source for the run config, or the message that says why `name` is refused. */
export function mapModel(name: string, policy: ModelPolicy, resolveModel: (name: string) => string | undefined): { source: string } | { error: string } {
  if (looksLikePath(name)) {
    return { error: `'${name}' is a path; a job names an allowed model (GET /v1/models lists them)${policy.offline ? '' : ' or a Hugging Face Hub id owner/name[@revision]'}` };
  }
  const folder = resolveModel(name);
  if (folder !== undefined) {
    if (!policy.allowedModelDirs.some((d) => inside(d, folder))) {
      return { error: `the server maps '${name}' to ${folder}, outside its allowed model folders: a server configuration error (allow that folder, or fix the model list)` };
    }
    return { source: resolve(folder) };
  }
  if (!HUB_ID.test(name)) {
    return { error: `unknown model '${name}': name an allowed model (GET /v1/models lists them)${policy.offline ? '' : ' or a Hugging Face Hub id owner/name[@revision]'}` };
  }
  if (policy.offline) return { error: `'${name}' is a Hub id, but this server is offline and downloads nothing: name an allowed local model (GET /v1/models lists them)` };
  return { source: name };
}
