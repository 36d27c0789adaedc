/**
 * Which base weights a weight-storage plugin (plugins/nf4, plugins/int8) replaces: `'all-linear'` (every decoder
 * linear layer, not the head), module names matching the end of the path (`'q_proj'`, `'mlp.down_proj'`), or a
 * regular expression over the whole module path. Names and regexes may pick the LM head too.
 */
import type { ParamSpec } from '../models/params.ts';

export type WeightTargets = readonly string[] | string;

/** The predicate for `targets`; `badRegex` words the error for a regex that does not compile (given the regex and why). */
export function linearWeightMatcher(targets: WeightTargets, badRegex: (detail: string) => string): (spec: Pick<ParamSpec, 'name' | 'kind'>) => boolean {
  const moduleOf = (name: string) => name.replace(/\.weight$/, '');
  if (targets === 'all-linear') return (s) => s.kind === 'linear';
  if (typeof targets === 'string') {
    let re: RegExp;
    try {
      re = new RegExp(`^(?:${targets})$`);
    } catch (e) {
      throw new Error(badRegex(`${JSON.stringify(targets)}: ${(e as Error).message}`));
    }
    return (s) => (s.kind === 'linear' || s.kind === 'head') && re.test(moduleOf(s.name));
  }
  return (s) => (s.kind === 'linear' || s.kind === 'head') && targets.some((t) => moduleOf(s.name) === t || moduleOf(s.name).endsWith(`.${t}`));
}
