/**
 * DoRA: weight-decomposed low-rank adaptation (Liu et al., 2024), as PEFT computes it (`use_dora=True`).
 *
 * A target linear layer's weight W [out, in] is re-parameterised as magnitude times direction:
 *   W' = m ⊙ (W + s·B·A) / ‖W + s·B·A‖,   s = alpha / r,
 * with the norm taken per output row and treated as a constant in the backward pass (the paper's memory saving,
 * which PEFT follows), m [out] trainable and started at ‖W‖, A [r, in] Kaiming-uniform and B [out, r] zero, so the
 * layer starts exactly as the base model. The output is computed without forming W':
 *   y = (m / ‖W + s·B·A‖) ⊙ (W x + s·B·A x).
 *
 * Written only against tuneforge's published API (`import … from 'tuneforge'`), as a third-party plugin would be.
 */
import { z } from 'zod';
import { hostTensor, nn, op, seededRandom, type HostTensor, type LinearSite, type Plugin, type Tensor } from 'tuneforge';
import { mergedWeight, rowNorms } from './math.ts';
import { loraA, loraB, magnitude } from './names.ts';
import { writeDoraAdapter } from './peft.ts';

export const doraOptions = z
  .object({
    r: z.number().int().positive().default(8).describe('rank of B·A'),
    alpha: z.number().positive().default(16).describe('scaling s = alpha / r'),
    targets: z
      .union([z.array(z.string()).min(1), z.literal('all-linear')])
      .default(['q_proj', 'v_proj'])
      .describe('module names (q_proj, v_proj, …) or all-linear (every projection but the head)'),
  })
  .strict();
export type DoraOptions = z.input<typeof doraOptions>;
/** The options schema `tuneforge plugins` shows (the convention for plugin packages). */
export const optionsSchema = doraOptions;
export type DoraConfig = z.output<typeof doraOptions>;

export const DORA_NAME = 'tuneforge-plugin-dora';

/** Initial values given from outside (a PEFT adapter being continued), by our parameter names. */
export interface DoraInitial {
  tensors?: ReadonlyMap<string, HostTensor>;
}

export function dora(options: DoraOptions = {}, initial: DoraInitial = {}): Plugin {
  const parsed = doraOptions.safeParse(options);
  if (!parsed.success) throw new Error(`${DORA_NAME}: invalid options: ${parsed.error.issues.map((i) => `${i.path.join('.') || '(options)'}: ${i.message}`).join('; ')}`);
  const config = parsed.data;
  const scaling = config.alpha / config.r;
  const sites = new Map<string, LinearSite>();
  const isTarget = (site: LinearSite) => site.layer >= 0 && (config.targets === 'all-linear' || config.targets.includes(site.module));

  return {
    name: DORA_NAME,
    options: { ...config },

    'config:validate'(ctx) {
      const modules = new Set(ctx.model.specs.map((s) => s.name.split('.').at(-2)!));
      if (config.targets === 'all-linear') return [];
      return config.targets.filter((t) => !modules.has(t)).map((t) => `targets: the model has no linear layer named '${t}' (it has ${[...modules].filter((m) => m.endsWith('_proj')).join(', ')})`);
    },

    'model:linear'(_ctx, site, x, weight, bias, next) {
      const base = next(site, x, weight, bias); // [..., out] = W x (+ bias)
      if (!isTarget(site)) return base;
      if (config.r > Math.min(site.inFeatures, site.outFeatures)) throw new Error(`${DORA_NAME}: r = ${config.r} is larger than ${site.name} (${site.outFeatures} x ${site.inFeatures})`);
      sites.set(site.name, site);
      const g = x.builder;
      const a = g.input(loraA(site.name), 'float32', [config.r, site.inFeatures]);
      const b = g.input(loraB(site.name), 'float32', [site.outFeatures, config.r]);
      const m = g.input(magnitude(site.name), 'float32', [site.outFeatures]);
      const s = (t: Tensor) => op.mul(t, op.scalar(t, scaling));
      // ‖W + s·B·A‖ per output row, a constant for the backward pass (stop_gradient): [out]
      const direction = op.add(weight, s(op.matmul(b, a))); // [out, in]
      const norm = op.stopGradient(op.sqrt(op.sum(op.square(direction), -1))); // [out]
      const rescale = op.div(m, norm); // [out], broadcast over the last axis of [..., out]
      const wx = bias ? op.sub(base, bias) : base;
      const update = s(nn.linear(nn.linear(x, a), b)); // [..., r] -> [..., out]
      const y = op.mul(op.add(wx, update), rescale);
      return bias ? op.add(y, bias) : y;
    },

    async 'params:init'(ctx, pending, baseWeights) {
      const values = new Map<string, HostTensor>();
      for (const p of pending) {
        const given = initial.tensors?.get(p.name);
        if (given) {
          values.set(p.name, given);
          continue;
        }
        const module = p.name.replace(/\.(lora_A\.weight|lora_B\.weight|lora_magnitude_vector)$/, '');
        if (!sites.has(module)) continue;
        if (p.name.endsWith('.lora_B.weight')) values.set(p.name, hostTensor('float32', p.shape));
        else if (p.name.endsWith('.lora_A.weight')) {
          // Kaiming-uniform with a = sqrt(5): U(-1/sqrt(in), 1/sqrt(in)), as PEFT initialises lora_A.
          const [r, inp] = p.shape as [number, number];
          const random = seededRandom(ctx.run.seed * 7919 + [...p.name].reduce((h, c) => (h * 31 + c.charCodeAt(0)) >>> 0, 23));
          const bound = 1 / Math.sqrt(inp);
          values.set(p.name, hostTensor('float32', [r, inp], Float32Array.from({ length: r * inp }, () => (2 * random() - 1) * bound)));
        } else {
          // m starts at ‖W‖ per row (B = 0), so the layer starts as the base model.
          const w = await baseWeights!.read(`${module}.weight`);
          const [out, inp] = w.shape as [number, number];
          values.set(p.name, hostTensor('float32', [out], rowNorms(w.data as Float32Array, out, inp)));
        }
      }
      return values;
    },

    'params:trainable'(_ctx, current) {
      return new Set([...current, ...[...sites.keys()].flatMap((m) => [loraA(m), loraB(m), magnitude(m)])]);
    },

    'export:merge'(_ctx, weights, trained) {
      const out = new Map(weights);
      for (const module of sites.keys()) {
        const w = weights.get(`${module}.weight`)!;
        out.set(`${module}.weight`, mergedWeight(w, trained.get(loraA(module))!, trained.get(loraB(module))!, trained.get(magnitude(module))!, scaling));
      }
      return out;
    },

    async 'export:artifacts'(ctx, dir, trained) {
      const out = `${dir}/adapter`;
      const modules = [...new Set([...sites.values()].map((s) => s.module))];
      await writeDoraAdapter(out, { ...config, targets: config.targets === 'all-linear' ? modules : config.targets, base: (ctx.model.config.raw._name_or_path as string | undefined) ?? null }, [...sites.keys()], trained);
      return [`${out}/adapter_config.json`, `${out}/adapter_model.safetensors`];
    },
  };
}

export { readDoraAdapter, writeDoraAdapter } from './peft.ts';

/** A DoRA plugin continuing a PEFT adapter folder (adapter_config.json with use_dora: true). */
export async function doraFromAdapter(dir: string): Promise<Plugin> {
  const { readDoraAdapter } = await import('./peft.ts');
  const { options, tensors } = await readDoraAdapter(dir);
  return dora(options, { tensors });
}

/** The factory a JSON config or an HTTP job calls: `{ "name": "tuneforge-plugin-dora", "options": { "r": 8 } }`. */
export default function plugin(options: DoraOptions = {}): Plugin {
  return dora(options);
}
