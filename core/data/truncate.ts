/**
 * Truncation policies (`right` | `left` | `drop`) for examples longer than maxLength.
 *
 * Whole sequences (chats, unpacked text): `right` keeps the first maxLength tokens; `left` keeps the last ones
 * (a leading BOS stays at position 0); `drop` drops the example.
 *
 * Prompt + response (instruction and prompt/completion records): the prompt is cut first, so that the response
 * survives whole where possible. The prompt keeps at least min(prompt length, ⌊maxLength/4⌋) tokens, so that a very
 * long response cannot push out its instruction entirely; the response gets the rest. Within each part, `right`
 * cuts the part's end and `left` its beginning (a leading BOS of the prompt is kept). `drop` drops the example.
 */
import type { DraftExample } from './example.ts';
import type { ResolvedTokenizeOptions } from './options.ts';

/** The policy names (TokenizeOptions.truncation). */
export type Truncation = ResolvedTokenizeOptions['truncation'];

/** Keeps `keep` items of `xs`: its first ones (`right`) or its last ones (`left`), keeping xs[0] when `pinFirst`. */
function cut<T>(xs: readonly T[], keep: number, side: 'right' | 'left', pinFirst: boolean): T[] {
  if (keep >= xs.length) return [...xs];
  if (keep <= 0) return [];
  if (side === 'right') return xs.slice(0, keep);
  return pinFirst ? [xs[0] as T, ...xs.slice(xs.length - keep + 1)] : xs.slice(xs.length - keep);
}

/**
 * Truncates a whole sequence; null when the policy drops it. `bosId` is kept at the front under `left`.
 * The caller drops the result when no trained label is left.
 */
export function truncateSequence(ex: DraftExample, maxLength: number, policy: Truncation, bosId: number | null): DraftExample | null {
  if (ex.inputIds.length <= maxLength) return ex;
  if (policy === 'drop') return null;
  const pin = policy === 'left' && bosId !== null && ex.inputIds[0] === bosId && maxLength > 1;
  return { inputIds: cut(ex.inputIds, maxLength, policy, pin), labels: cut(ex.labels, maxLength, policy, pin) };
}

/**
 * Truncates prompt + response, where `promptLength` tokens of `ex` are prompt; null when the policy drops it or
 * the response would be cut away entirely.
 */
export function truncatePair(
  ex: DraftExample,
  promptLength: number,
  maxLength: number,
  policy: Truncation,
  bosId: number | null,
): DraftExample | null {
  const total = ex.inputIds.length;
  if (total <= maxLength) return ex;
  if (policy === 'drop') return null;
  const responseLength = total - promptLength;
  const promptKeep = Math.max(maxLength - responseLength, Math.min(promptLength, Math.floor(maxLength / 4)));
  const responseKeep = maxLength - promptKeep;
  if (responseKeep <= 0) return null;
  const pin = policy === 'left' && bosId !== null && ex.inputIds[0] === bosId;
  const part = (xs: readonly number[]): number[] => [
    ...cut(xs.slice(0, promptLength), promptKeep, policy, pin),
    ...cut(xs.slice(promptLength), responseKeep, policy, false),
  ];
  return { inputIds: part(ex.inputIds), labels: part(ex.labels) };
}
