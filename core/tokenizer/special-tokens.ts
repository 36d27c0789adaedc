/** Special-token strings as transformers reads them from tokenizer_config.json and special_tokens_map.json. */

/** The named special tokens of a tokenizer (token strings, not ids); `null` when not defined. */
export interface SpecialTokens {
  readonly bos: string | null;
  readonly eos: string | null;
  readonly unk: string | null;
  readonly pad: string | null;
  readonly sep: string | null;
  readonly cls: string | null;
  readonly mask: string | null;
  readonly additional: readonly string[];
}

type Json = Readonly<Record<string, unknown>>;

/** A token entry is either a string or an AddedToken object `{content, ...}` (`__type: "AddedToken"`). */
export function tokenContent(v: unknown): string | null {
  if (typeof v === 'string') return v;
  if (typeof v === 'object' && v !== null && typeof (v as { content?: unknown }).content === 'string') {
    return (v as { content: string }).content;
  }
  return null;
}

/**
 * Reads the special tokens. Like transformers' `from_pretrained`, a non-null value in special_tokens_map.json
 * overrides the one in tokenizer_config.json.
 */
export function readSpecialTokens(config: Json, specialTokensMap: Json = {}): SpecialTokens {
  const pick = (key: string): string | null => tokenContent(specialTokensMap[key]) ?? tokenContent(config[key]);
  const list = (v: unknown): string[] =>
    Array.isArray(v) ? v.map(tokenContent).filter((t): t is string => t !== null) : [];
  const additional = list(specialTokensMap['additional_special_tokens']);
  return {
    bos: pick('bos_token'),
    eos: pick('eos_token'),
    unk: pick('unk_token'),
    pad: pick('pad_token'),
    sep: pick('sep_token'),
    cls: pick('cls_token'),
    mask: pick('mask_token'),
    additional: additional.length > 0 ? additional : list(config['additional_special_tokens']),
  };
}

/** The `*_token` variables a chat template sees (only the defined ones), as in transformers. */
export function templateTokenContext(t: SpecialTokens): Record<string, string | readonly string[]> {
  const ctx: Record<string, string | readonly string[]> = {};
  const entries: [string, string | null][] = [
    ['bos_token', t.bos], ['eos_token', t.eos], ['unk_token', t.unk], ['pad_token', t.pad],
    ['sep_token', t.sep], ['cls_token', t.cls], ['mask_token', t.mask],
  ];
  for (const [k, v] of entries) if (v !== null) ctx[k] = v;
  if (t.additional.length > 0) ctx['additional_special_tokens'] = t.additional;
  return ctx;
}
