/**
 * A refused job request is answered with every problem at once, each naming the request field (OpenAI's `param`)
 * and saying what to change, so a client fixes its request in one round trip.
 */
import type { z } from 'zod';

export interface Problem {
  /** The request field, e.g. `method.supervised.hyperparameters.n_epochs` or `tuneforge.plugins[0]`. */
  param: string;
  message: string;
}

/** `['tuneforge', 'plugins', 0, 'name']` → `tuneforge.plugins[0].name`. */
export function formatParam(path: readonly PropertyKey[]): string {
  let out = '';
  for (const key of path) {
    if (typeof key === 'number') out += `[${key}]`;
    else out += out === '' ? String(key) : `.${String(key)}`;
  }
  return out === '' ? '(body)' : out;
}

/** Zod's issues as problems, their paths under `prefix` (the field the validated value came from). */
export function issuesToProblems(error: z.ZodError, prefix: readonly PropertyKey[] = []): Problem[] {
  return error.issues.map((i) => ({ param: formatParam([...prefix, ...i.path]), message: i.message }));
}
