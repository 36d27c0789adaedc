/**
 * The per-layer statistic behind LISA (Pan et al. 2024, the layer-wise weight-norm figure): how far fine-tuning moved
 * each layer's weights from the base model, ‖θ_l − θ_l⁰‖, one value per group (embeddings, each decoder layer, final
 * norm, head), and a chart of it with one series per technique. The paper saw LoRA's updates concentrate in the
 * bottom and top layers; LISA keeps those always trainable and samples the middle ones.
 *
 * ```ts
 * const full = layerChangeNorms(config, base, fullTrained);
 * const svg = layerNormChart({ groups: full.groups, series: [{ name: 'full', values: full.values }] });
 * ```
 */
import type { HostTensor, ModelConfig } from '../../core/index.ts';
import { barChartSvg, lineChartSvg } from '../../core/index.ts';

export interface LayerChangeNorms {
  /** Group labels in model order: 'emb' (with tied embeddings also the head), '0' .. 'L-1', 'norm', 'head' (untied only). */
  groups: string[];
  /** ‖θ − θ⁰‖ per group (Frobenius norm over all its tensors), or relative to ‖θ⁰‖ with `relative`. */
  values: number[];
}

const LAYER_NAME = /^model\.layers\.(\d+)\./;

/** The group label of a parameter name. */
export function layerGroup(name: string): string {
  const m = LAYER_NAME.exec(name);
  if (m) return m[1]!;
  if (name.includes('embed_tokens')) return 'emb';
  if (name === 'lm_head.weight') return 'head';
  return 'norm';
}

/**
 * Per group, the norm of the change from `base` to `tuned` (a name missing from `tuned` did not change). Pass
 * merged weights for adapter methods (LoRA: W + s·BA). With `relative`, each value is divided by the group's base norm.
 */
export function layerChangeNorms(
  config: Pick<ModelConfig, 'layers' | 'tieWordEmbeddings'>,
  base: ReadonlyMap<string, HostTensor>,
  tuned: ReadonlyMap<string, HostTensor>,
  options: { relative?: boolean } = {},
): LayerChangeNorms {
  const tied = config.tieWordEmbeddings;
  const groups = ['emb', ...Array.from({ length: config.layers }, (_, i) => String(i)), 'norm', ...(tied ? [] : ['head'])];
  const change = new Map(groups.map((g) => [g, 0]));
  const size = new Map(groups.map((g) => [g, 0]));
  for (const [name, b] of base) {
    const group = layerGroup(name);
    if (!change.has(group)) continue;
    const w0 = b.data as Float32Array;
    const w = (tuned.get(name)?.data as Float32Array | undefined) ?? w0;
    if (w.length !== w0.length) throw new Error(`layerChangeNorms: '${name}' has ${w.length} values but ${w0.length} in the base`);
    let d2 = 0, b2 = 0;
    for (let i = 0; i < w0.length; i++) {
      const d = w[i]! - w0[i]!;
      d2 += d * d;
      b2 += w0[i]! * w0[i]!;
    }
    change.set(group, change.get(group)! + d2);
    size.set(group, size.get(group)! + b2);
  }
  const values = groups.map((g) => Math.sqrt(change.get(g)!) / (options.relative ? Math.sqrt(size.get(g)!) || 1 : 1));
  return { groups, values };
}

export interface LayerNormChartOptions {
  /** Category labels along x (from {@link layerChangeNorms}). */
  groups: readonly string[];
  /** One series per technique, a value per group. */
  series: readonly { name: string; values: readonly number[] }[];
  title?: string;
  yLabel?: string;
  /** 'bar' (grouped bars, default) or 'line' (decoder layers only, as the paper's figure; other groups are dropped). */
  style?: 'bar' | 'line';
  logY?: boolean;
  width?: number;
  height?: number;
}

/** An SVG chart of a per-layer statistic: layer groups on x, the statistic on y, one series per technique. */
export function layerNormChart(opts: LayerNormChartOptions): string {
  const text = {
    title: opts.title ?? 'weight change per layer',
    xLabel: 'layer',
    yLabel: opts.yLabel ?? '‖θ − θ₀‖',
  };
  if (opts.style === 'line') {
    const layerAt = opts.groups.map((g) => (/^\d+$/.test(g) ? Number(g) : undefined));
    return lineChartSvg({
      ...text, width: opts.width ?? 900, height: opts.height, logY: opts.logY,
      series: opts.series.map((s) => ({
        name: s.name, markers: true,
        points: s.values.flatMap((v, i) => (layerAt[i] === undefined ? [] : [[layerAt[i]!, v] as const])),
      })),
    });
  }
  return barChartSvg({ ...text, width: opts.width ?? 900, height: opts.height, logY: opts.logY, categories: opts.groups, series: opts.series });
}
