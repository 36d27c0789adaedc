import type { LinearSite } from '../../core/index.ts';

/**
 * PEFT's target_modules semantics: a list matches a module whose name equals an entry or ends with `.entry`;
 * a string is a regular expression that must match the whole module name; `"all-linear"` is every linear layer
 * except the output head.
 */
export function targetMatcher(targets: readonly string[] | string): (site: LinearSite) => boolean {
  if (targets === 'all-linear') return (site) => site.module !== 'lm_head';
  if (typeof targets === 'string') {
    let re: RegExp;
    try {
      re = new RegExp(`^(?:${targets})$`);
    } catch (e) {
      throw new Error(`target_modules: invalid regular expression ${JSON.stringify(targets)}: ${(e as Error).message}`);
    }
    return (site) => re.test(site.name);
  }
  return (site) => targets.some((t) => site.name === t || site.name.endsWith(`.${t}`));
}
