/**
 * The `tuneforge` extension of a job request: run-config sections merged over what the OpenAI fields map to. It may
 * tune how the run trains (train, data, eval, checkpoint, export, memory) and pick plugins (plugins.ts), but never
 * what is read or written or loaded: `model`, `output`, the data files and `task` (which names its own files) come
 * from the request's OpenAI fields and the server alone.
 */
import { parseBudget } from '../../core/memory/index.ts';
import { trainConfigSchema } from '../../core/train/config.ts';
import { issuesToProblems, type Problem } from './problems.ts';
import type { TuneforgeExtension } from './schema.ts';

export const SECTIONS = ['train', 'data', 'eval', 'checkpoint', 'export', 'memory'] as const;
export type Section = (typeof SECTIONS)[number];
export type Sections = Partial<Record<Section, Record<string, unknown>>>;

/** Fields a request may not set, with what to do instead. */
const REFUSED_TOP: Readonly<Record<string, string>> = {
  model: "the model is the request's `model` field",
  output: 'the server chooses the run folder (its files are served as the job\'s result files)',
  seed: "use the request's `seed` field",
  task: 'task.choice reads files named in the config; send the data as training_file (prompt/completion or chat records) instead',
};
const REFUSED_DATA: Readonly<Record<string, string>> = {
  train: "the training data is the request's `training_file`",
  eval: "validation data is the request's `validation_file`",
};

/** The extension's sections, each validated against the run config's schema; every problem names its field. */
export function checkExtension(ext: TuneforgeExtension | undefined, policyBudget: number | string | undefined): { sections: Sections; problems: Problem[] } {
  const sections: Sections = {};
  const problems: Problem[] = [];
  for (const [key, value] of Object.entries(ext ?? {})) {
    if (key === 'plugins' || value === undefined) continue;
    if (key in REFUSED_TOP) {
      problems.push({ param: `tuneforge.${key}`, message: `may not be set by a request: ${REFUSED_TOP[key]}` });
      continue;
    }
    if (!(SECTIONS as readonly string[]).includes(key)) {
      problems.push({ param: `tuneforge.${key}`, message: `not a run config section a request may set: use plugins, ${SECTIONS.join(', ')}` });
      continue;
    }
    const section = key as Section;
    const fields = { ...(value as Record<string, unknown>) };
    if (section === 'data') {
      for (const field of Object.keys(REFUSED_DATA)) {
        if (!(field in fields)) continue;
        problems.push({ param: `tuneforge.data.${field}`, message: `may not be set by a request: ${REFUSED_DATA[field]}` });
        delete fields[field];
      }
    }
    const r = trainConfigSchema.shape[section].safeParse(fields);
    if (!r.success) problems.push(...issuesToProblems(r.error, ['tuneforge', section]));
    sections[section] = fields;
  }
  const budget = sections.memory?.budget;
  if (policyBudget !== undefined && (typeof budget === 'number' || typeof budget === 'string')) {
    try {
      if (parseBudget(budget) > parseBudget(policyBudget)) {
        problems.push({ param: 'tuneforge.memory.budget', message: `${budget} is more than this server's memory budget (${policyBudget}): ask for at most that, or leave it out` });
      }
    } catch {
      // An unreadable budget was reported by the schema above.
    }
  }
  return { sections, problems };
}
