/**
 * Record formats: detection from a record's keys, and validation + normalisation of each raw record (zod schemas)
 * into one of four kinds: instruction, prompt-completion, chat (roles mapped to user/assistant/system), text,
 * and classification. Record types are inferred from the schemas.
 */
import { z } from 'zod';
import type { DataFormat } from './options.ts';
import type { RecordSource } from './problems.ts';

const nonEmpty = (what: string) => z.string().refine((s) => s.trim() !== '', `empty ${what}`);

type Role = 'user' | 'assistant' | 'system';

/** A role name mapped through `map`; other names are an issue. */
const role = (map: Readonly<Record<string, Role>>) =>
  z.string().transform((r, ctx): Role => {
    const m = map[r];
    if (m === undefined) {
      ctx.issues.push({ code: 'custom', message: `unsupported role "${r}" (supported: ${Object.keys(map).join(', ')})`, input: r });
      return z.NEVER;
    }
    return m;
  });

const SHAREGPT_ROLES: Record<string, Role> = { human: 'user', user: 'user', gpt: 'assistant', assistant: 'assistant', system: 'system' };
const OPENAI_ROLES: Record<string, Role> = { user: 'user', assistant: 'assistant', system: 'system', developer: 'system' };

/** OpenAI content: a string, or a list of parts whose text parts are joined. */
const openaiContent = z.union([
  z.string(),
  z.array(z.object({ type: z.string(), text: z.string().optional() })).transform((parts) =>
    parts.filter((p) => p.type === 'text').map((p) => p.text ?? '').join(''),
  ),
]);

type Message = { role: Role; content: string };

/** Checks common to both chat formats (at least one assistant turn, none empty), as a zod transform. */
function toChat(ms: Message[], ctx: z.RefinementCtx): { kind: 'chat'; messages: Message[] } {
  const problem = !ms.some((m) => m.role === 'assistant')
    ? 'no assistant message'
    : ms.some((m) => m.role === 'assistant' && m.content.trim() === '')
      ? 'empty response (an assistant message is empty)'
      : undefined;
  if (problem !== undefined) {
    ctx.issues.push({ code: 'custom', message: problem, input: ms });
    return z.NEVER;
  }
  return { kind: 'chat', messages: ms };
}

/** Validation and normalisation of one raw record, per format. */
export const RECORD_SCHEMAS = {
  alpaca: z
    .object({
      instruction: nonEmpty('instruction'),
      input: z.string().nullish(),
      output: nonEmpty('response'),
      system: z.string().nullish(),
      history: z.array(z.tuple([z.string(), z.string()])).nullish(),
    })
    .transform((r) => ({
      kind: 'instruction' as const,
      instruction: r.instruction,
      input: r.input ?? '',
      output: r.output,
      system: r.system ?? '',
      history: r.history ?? [],
    })),
  sharegpt: z
    .object({ conversations: z.array(z.object({ from: role(SHAREGPT_ROLES), value: z.string() })).min(1) })
    .transform((r, ctx) => toChat(r.conversations.map((m) => ({ role: m.from, content: m.value })), ctx)),
  openai: z
    .object({ messages: z.array(z.object({ role: role(OPENAI_ROLES), content: openaiContent })).min(1) })
    .transform((r, ctx) => toChat(r.messages, ctx)),
  'prompt-completion': z
    .object({ prompt: nonEmpty('prompt'), completion: nonEmpty('response') })
    .transform((r) => ({ kind: 'prompt-completion' as const, prompt: r.prompt, completion: r.completion })),
  text: z.object({ text: nonEmpty('text') }).transform((r) => ({ kind: 'text' as const, text: r.text })),
  classification: z
    .object({
      text: z.string().optional(),
      sentence: z.string().optional(),
      label: z.union([z.number(), z.string(), z.null()]).optional(),
    })
    .transform((r) => ({ kind: 'classification' as const, text: r.text ?? r.sentence ?? '', label: r.label ?? null }))
    .refine((r) => r.text.trim() !== '', 'empty or missing text/sentence'),
} satisfies Record<DataFormat, z.ZodType>;

/** A validated record, with where it came from. */
export type DataRecord = z.infer<(typeof RECORD_SCHEMAS)[DataFormat]> & { readonly source: RecordSource };
/** A record of one kind. */
export type RecordOfKind<K extends DataRecord['kind']> = Extract<DataRecord, { kind: K }>;

/** The format a raw record looks like, from its keys; undefined when it matches none. */
export function detectFormat(value: unknown): DataFormat | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
  const has = (k: string) => k in value;
  if (has('conversations')) return 'sharegpt';
  if (has('messages')) return 'openai';
  if (has('instruction') && has('output')) return 'alpaca';
  if (has('prompt') && has('completion')) return 'prompt-completion';
  if ((has('text') || has('sentence')) && has('label')) return 'classification';
  if (has('text')) return 'text';
  return undefined;
}

/** One readable line per zod issue: `missing field "output"`, `field "conversations.1.from": ...`. */
function describeIssues(error: z.ZodError): string {
  return error.issues
    .map((i) => {
      const path = i.path.map(String).join('.');
      if (i.code === 'invalid_type' && /received undefined/.test(i.message)) return `missing field "${path}"`;
      return path === '' ? i.message : `field "${path}": ${i.message}`;
    })
    .join('; ');
}

/** Validates a raw record as `format`; returns the record, or the reason it is malformed. */
export function normalizeRecord(format: DataFormat, value: unknown, source: RecordSource): DataRecord | string {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return `expected a JSON object, found ${value === null ? 'null' : Array.isArray(value) ? 'an array' : typeof value}`;
  }
  const r = RECORD_SCHEMAS[format].safeParse(value);
  if (!r.success) return describeIssues(r.error);
  return { ...r.data, source };
}
