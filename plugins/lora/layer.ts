/**
 * The LoRA layer: h = W x + b + scaling * B (A x), with A [r, in] and B [out, r] (PEFT's shapes and names).
 * W stays frozen; only A and B are graph inputs that receive gradients.
 */
import { nn, op, type GraphBuilder, type LinearSite, type ModelHooks, type Tensor } from '../../core/index.ts';

export interface LoraShape {
  r: number;
  alpha: number;
  /** rsLoRA: scale by alpha / sqrt(r) instead of alpha / r. */
  useRslora?: boolean;
  /** Per-module overrides, as PEFT's rank_pattern / alpha_pattern (keys match the end of the module name). */
  rankPattern?: Record<string, number>;
  alphaPattern?: Record<string, number>;
}

export function loraScaling(r: number, alpha: number, rslora = false): number {
  return rslora ? alpha / Math.sqrt(r) : alpha / r;
}

/** Rank and alpha for one module, honouring the patterns (longest matching key wins). */
export function rankAndAlpha(site: Pick<LinearSite, 'name'>, s: LoraShape): { r: number; alpha: number } {
  const pick = (pattern: Record<string, number> | undefined, fallback: number) => {
    const keys = Object.keys(pattern ?? {}).filter((k) => site.name === k || site.name.endsWith(`.${k}`)).sort((a, b) => b.length - a.length);
    return keys.length ? pattern![keys[0]!]! : fallback;
  };
  return { r: pick(s.rankPattern, s.r), alpha: pick(s.alphaPattern, s.alpha) };
}

export const loraAName = (module: string): string => `${module}.lora_A.weight`;
export const loraBName = (module: string): string => `${module}.lora_B.weight`;

/**
 * A `linear` model hook adding LoRA to the sites `isTarget` selects. The LoRA matrices become graph inputs named
 * `<module>.lora_A.weight` / `.lora_B.weight`; `onAdapter` reports each one (for initialisation and export).
 */
export function loraLinearHook(
  g: GraphBuilder,
  shape: LoraShape,
  isTarget: (site: LinearSite) => boolean,
  onAdapter?: (site: LinearSite, r: number, alpha: number) => void,
): NonNullable<ModelHooks['linear']> {
  return (site, x, weight, bias) => {
    const base = nn.linear(x, weight, bias); // [..., out]
    if (!isTarget(site)) return base;
    const { r, alpha } = rankAndAlpha(site, shape);
    onAdapter?.(site, r, alpha);
    const a = g.input(loraAName(site.name), 'float32', [r, site.inFeatures]);
    const b = g.input(loraBName(site.name), 'float32', [site.outFeatures, r]);
    const update = nn.linear(nn.linear(x, a), b); // [..., r] -> [..., out]
    return op.add(base, op.mul(update, loraScaling(r, alpha, shape.useRslora)));
  };
}

