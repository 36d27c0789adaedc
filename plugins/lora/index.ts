/**
 * LoRA (Hu et al. 2021, "LoRA: Low-Rank Adaptation of Large Language Models"): the chosen linear layers keep their
 * frozen weight W and learn a low-rank update, h = W x + (alpha / r) · B (A x). A starts Kaiming-uniform, B at zero,
 * so training starts from the base model exactly. Exports a PEFT adapter folder and merges into the base weights.
 *
 * ```ts
 * plugins: [lora({ r: 8, alpha: 16, targets: ['q_proj', 'v_proj'] })]
 * ```
 */
import { hostTensor, nn, op, seededRandom, type HostTensor, type LinearSite, type Plugin } from '../../core/index.ts';
import { writePeftAdapter, type PeftLoraConfig } from './adapter.ts';
import { loraSchema, type LoraConfig, type LoraOptions } from './config.ts';
import { loraAName, loraBName, loraScaling, rankAndAlpha } from './layer.ts';
import { targetMatcher } from './targets.ts';

export const LORA = 'tuneforge:lora';

interface Adapted {
  site: LinearSite;
  r: number;
  alpha: number;
}

export interface LoraApi {
  readonly config: LoraConfig;
  /** The adapted modules, filled in when the model graph is built. */
  readonly adapted: ReadonlyMap<string, Adapted>;
  /** W + scaling · B A for every adapted module, as new tensors (the inputs are not changed). */
  merge(weights: ReadonlyMap<string, HostTensor>, trained: ReadonlyMap<string, HostTensor>): Map<string, HostTensor>;
  /** The inverse: W − scaling · B A (recovers the base from merged weights, up to float32 rounding). */
  unmerge(weights: ReadonlyMap<string, HostTensor>, trained: ReadonlyMap<string, HostTensor>): Map<string, HostTensor>;
}

const maskName = (module: string) => `${module}.lora_dropout_mask`;

/** out[o, i] += s · sum_k b[o, k] a[k, i]: small r, so a plain loop is cheap (r · out · in multiply-adds). */
function addLowRank(w: Float32Array, b: Float32Array, a: Float32Array, out: number, inp: number, r: number, s: number): void {
  const row = new Float64Array(inp);
  for (let o = 0; o < out; o++) {
    row.fill(0);
    for (let k = 0; k < r; k++) {
      const bk = b[o * r + k]!;
      if (bk === 0) continue;
      for (let i = 0; i < inp; i++) row[i]! += bk * a[k * inp + i]!;
    }
    for (let i = 0; i < inp; i++) w[o * inp + i] = w[o * inp + i]! + s * row[i]!;
  }
}

export function lora(options: LoraOptions = {}): Plugin<LoraApi> {
  const config = loraSchema.parse(options);
  const isTarget = targetMatcher(config.targets);
  const adapted = new Map<string, Adapted>();
  const shape = { r: config.r, alpha: config.alpha, useRslora: config.useRslora, rankPattern: config.rankPattern, alphaPattern: config.alphaPattern };

  const fold = (sign: 1 | -1): LoraApi['merge'] => (weights, trained) => {
    const out = new Map(weights);
    for (const { site, r, alpha } of adapted.values()) {
      const key = `${site.name}.weight`;
      const base = weights.get(key);
      const a = trained.get(loraAName(site.name)), b = trained.get(loraBName(site.name));
      if (!base || !a || !b) throw new Error(`lora merge: missing ${!base ? key : !a ? loraAName(site.name) : loraBName(site.name)}`);
      const merged = new Float32Array(base.data as Float32Array);
      addLowRank(merged, b.data as Float32Array, a.data as Float32Array, site.outFeatures, site.inFeatures, r, sign * loraScaling(r, alpha, config.useRslora));
      out.set(key, hostTensor('float32', base.shape, merged));
    }
    return out;
  };

  const merge = fold(1);
  const unmerge = fold(-1);
  return {
    name: LORA,
    options: config,
    api: { config, adapted, merge, unmerge },

    'config:validate'(ctx) {
      const problems: string[] = [];
      const sites = ctx.model.specs.filter((s) => s.kind === 'linear').map((s) => s.name.replace(/\.weight$/, ''));
      const fake = (name: string) => ({ name, module: name.slice(name.lastIndexOf('.') + 1), layer: 0, inFeatures: 0, outFeatures: 0 });
      if (!sites.some((n) => isTarget(fake(n)))) {
        const modules = [...new Set(sites.map((n) => n.slice(n.lastIndexOf('.') + 1)))];
        problems.push(`targets ${JSON.stringify(config.targets)} match no linear layer of this model; its modules are ${modules.join(', ')}`);
      }
      return problems;
    },

    'model:linear'(ctx, site, x, weight, bias, next) {
      const base = next(site, x, weight, bias); // [..., out]
      if (!isTarget(site)) return base;
      const { r, alpha } = rankAndAlpha(site, shape);
      adapted.set(site.name, { site, r, alpha });
      const g = x.builder;
      const a = g.input(loraAName(site.name), 'float32', [r, site.inFeatures]);
      const b = g.input(loraBName(site.name), 'float32', [site.outFeatures, r]);
      // Inverted dropout on the adapter's input, with masks fed per step so runs reproduce exactly.
      const input = config.dropout > 0 && ctx.phase === 'train' ? op.mul(x, g.input(maskName(site.name), 'float32', x.shape)) : x;
      const update = nn.linear(nn.linear(input, a), b); // [..., r] -> [..., out]
      return op.add(base, op.mul(update, loraScaling(r, alpha, config.useRslora)));
    },

    'params:init'(ctx, pending) {
      const values = new Map<string, HostTensor>();
      for (const p of pending) {
        const module = p.name.replace(/\.lora_[AB]\.weight$/, '');
        if (!adapted.has(module)) continue;
        if (p.name.endsWith('.lora_B.weight')) {
          values.set(p.name, hostTensor('float32', p.shape));
          continue;
        }
        // A: Kaiming-uniform with a = sqrt(5) over fan_in, i.e. U(-1/sqrt(in), 1/sqrt(in)) (PEFT's default).
        const [r, inp] = p.shape as [number, number];
        const random = seededRandom(ctx.run.seed * 7919 + [...p.name].reduce((h, c) => (h * 31 + c.charCodeAt(0)) >>> 0, 17));
        const data = new Float32Array(r * inp);
        if (config.init === 'kaiming') {
          const bound = 1 / Math.sqrt(inp);
          for (let i = 0; i < data.length; i++) data[i] = (2 * random() - 1) * bound;
        } else {
          for (let i = 0; i < data.length; i++) data[i] = (Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random())) / r;
        }
        values.set(p.name, hostTensor('float32', p.shape, data));
      }
      return values;
    },

    'params:trainable'(_ctx, current) {
      const names = [...adapted.keys()].flatMap((m) => [loraAName(m), loraBName(m)]);
      return new Set([...current, ...names]);
    },

    'step:feeds'(ctx) {
      if (config.dropout === 0) return;
      const feeds: Record<string, HostTensor> = {};
      const keep = 1 - config.dropout;
      for (const { site } of adapted.values()) {
        const n = ctx.dims.B! * ctx.dims.T! * site.inFeatures;
        const mask = new Float32Array(n);
        for (let i = 0; i < n; i++) mask[i] = ctx.random() < keep ? 1 / keep : 0;
        feeds[maskName(site.name)] = hostTensor('float32', [ctx.dims.B!, ctx.dims.T!, site.inFeatures], mask);
      }
      return feeds;
    },

    'export:merge'(_ctx, weights, trained) {
      return merge(weights, trained);
    },

    async 'export:artifacts'(ctx, dir, trained) {
      const tensors = new Map<string, HostTensor>();
      for (const m of adapted.keys()) {
        tensors.set(loraAName(m), trained.get(loraAName(m))!);
        tensors.set(loraBName(m), trained.get(loraBName(m))!);
      }
      const modules = [...new Set([...adapted.values()].map((a) => a.site.module))];
      const peft: PeftLoraConfig = {
        peft_type: 'LORA', task_type: 'CAUSAL_LM', r: config.r, lora_alpha: config.alpha,
        target_modules: typeof config.targets === 'string' && config.targets !== 'all-linear' ? config.targets : modules,
        base_model_name_or_path: ctx.model.config.raw._name_or_path as string | undefined ?? null,
        lora_dropout: config.dropout, bias: 'none', use_rslora: config.useRslora, fan_in_fan_out: false,
        rank_pattern: config.rankPattern, alpha_pattern: config.alphaPattern, inference_mode: true,
      };
      const out = `${dir}/adapter`;
      await writePeftAdapter(out, peft, tensors);
      return [`${out}/adapter_config.json`, `${out}/adapter_model.safetensors`];
    },

  };
}

export { loraSchema, type LoraOptions, type LoraConfig };
export { readPeftAdapter, writePeftAdapter, adapterHooks } from './adapter.ts';
