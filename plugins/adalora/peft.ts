/**
 * Reading PEFT AdaLoRA adapter folders: `adapter_config.json` (`peft_type: "ADALORA"`) becomes an `adalora` plugin
 * whose graph inputs are the file's tensors, names and shapes: per module `lora_A` [r, in], `lora_E` [r, 1],
 * `lora_B` [out, r], r the kept ranks of `rank_pattern` (the file is saved pruned), ranknum = init_r.
 */
import { z } from 'zod';
import type { HostTensor, Plugin } from '../../core/index.ts';
import { AdapterConfigError, parseAdapterConfig, type PeftFormat } from '../peft/format.ts';
import { adalora } from './index.ts';
import { loraAName, loraBName, loraEName, moduleOf } from './layer.ts';

/** The fields AdaLoRA reads, with PEFT's defaults; everything else PEFT writes is let through. */
export const peftAdaloraSchema = z
  .object({
    peft_type: z.literal('ADALORA'),
    init_r: z.number().int().positive().default(12),
    target_r: z.number().int().positive().default(8),
    lora_alpha: z.number().positive({ error: 'must be > 0 (PEFT then scales by lora_alpha / (init_r + 1e-5))' }).default(8),
    lora_dropout: z.number().min(0).lt(1).default(0),
    target_modules: z.union([z.array(z.string()), z.string()]).nullable().optional(),
    bias: z.literal('none', { error: "only 'none' is supported (trained biases are not part of this adapter format here)" }).default('none'),
    fan_in_fan_out: z.literal(false, { error: 'fan_in_fan_out adapters (GPT-2 Conv1D weights) are not supported' }).default(false),
    use_dora: z.literal(false, { error: 'AdaLoRA does not support DoRA' }).optional(),
    tinit: z.number().int().min(0).default(0),
    tfinal: z.number().int().min(0).default(0),
    deltaT: z.number().int().positive().default(1),
    beta1: z.number().gt(0).lt(1).default(0.85),
    beta2: z.number().gt(0).lt(1).default(0.85),
    orth_reg_weight: z.number().min(0).default(0.5),
    total_step: z.number({ error: 'required: PEFT refuses an AdaLoRA config without a total_step > 0' }).int().positive(),
    rank_pattern: z.record(z.string(), z.array(z.boolean())).nullable().default(null),
  })
  .loose()
  .superRefine((c, issue) => {
    if (c.tinit >= c.total_step - c.tfinal) {
      issue.addIssue({ code: 'custom', path: ['tinit'], message: `tinit ${c.tinit} must be less than total_step − tfinal (${c.total_step} − ${c.tfinal}), as PEFT requires` });
    }
    if (c.target_r > c.init_r) issue.addIssue({ code: 'custom', path: ['target_r'], message: `target_r ${c.target_r} exceeds init_r ${c.init_r}` });
  });

interface FileModule {
  name: string;
  r: number;
  inFeatures: number;
  outFeatures: number;
}

/** The modules of the file and their ranks, checked for complete, consistent triplets. */
function modulesOf(tensors: ReadonlyMap<string, HostTensor>, where: string): FileModule[] {
  const names = [...new Set([...tensors.keys()].map(moduleOf).filter((m): m is string => m !== undefined))].sort();
  const other = [...tensors.keys()].filter((n) => moduleOf(n) === undefined);
  if (other.length) throw new AdapterConfigError(where, 'adapter_model.safetensors', `tensors that are not AdaLoRA's lora_A / lora_E / lora_B: ${other.slice(0, 3).join(', ')}`);
  if (names.length === 0) throw new AdapterConfigError(where, 'adapter_model.safetensors', 'no lora_A / lora_E / lora_B tensors');
  return names.map((name) => {
    const [a, e, b] = [loraAName(name), loraEName(name), loraBName(name)].map((n) => {
      const t = tensors.get(n);
      if (!t) throw new AdapterConfigError(where, 'adapter_model.safetensors', `${n} is missing (each module needs lora_A, lora_E and lora_B)`);
      if (t.shape.length !== 2) throw new AdapterConfigError(where, 'adapter_model.safetensors', `${n} has shape [${t.shape}], expected a matrix`);
      return t.shape as [number, number];
    }) as [[number, number], [number, number], [number, number]];
    const r = a[0];
    if (e[0] !== r || e[1] !== 1 || b[1] !== r) {
      throw new AdapterConfigError(where, 'adapter_model.safetensors', `${name}: lora_A [${a}], lora_E [${e}], lora_B [${b}] disagree on the rank (expected [r, in], [r, 1], [out, r])`);
    }
    return { name, r, inFeatures: a[1], outFeatures: b[0] };
  });
}

export const adaloraPeft: PeftFormat = {
  types: ['ADALORA'],

  plugin(raw, tensors, where): Plugin {
    const c = parseAdapterConfig(peftAdaloraSchema, raw, where);
    const modules = modulesOf(tensors, where);
    const pattern = c.rank_pattern;
    const rankPattern: Record<string, boolean[]> = {};
    if (pattern) {
      const known = new Set(modules.map((m) => loraEName(m.name)));
      const stray = Object.keys(pattern).filter((k) => !known.has(k));
      if (stray.length) throw new AdapterConfigError(where, 'rank_pattern', `keys with no tensors in the file: ${stray.slice(0, 3).join(', ')} (keys are '<module>.lora_E')`);
    }
    for (const m of modules) {
      const keep = pattern?.[loraEName(m.name)];
      if (!keep) {
        if (m.r !== c.init_r) throw new AdapterConfigError(where, 'rank_pattern', `${m.name} has rank ${m.r} in the file but no entry, so it should have init_r ${c.init_r}`);
        continue;
      }
      const field = `rank_pattern.${loraEName(m.name)}`;
      if (keep.length !== c.init_r) throw new AdapterConfigError(where, field, `has ${keep.length} entries, expected init_r ${c.init_r}`);
      const kept = keep.filter(Boolean).length;
      if (kept !== m.r) throw new AdapterConfigError(where, field, `keeps ${kept} ranks but the file's tensors have rank ${m.r}`);
      if (kept === 0) throw new AdapterConfigError(where, field, 'keeps no rank; rank-0 modules are not supported');
      rankPattern[m.name] = keep;
    }
    const inner = adalora({
      initR: c.init_r, targetR: c.target_r, alpha: c.lora_alpha, dropout: c.lora_dropout,
      // Exactly the file's modules (target_modules may also match modules the adapter left out).
      targets: modules.map((m) => m.name),
      tinit: c.tinit, tfinal: c.tfinal, deltaT: c.deltaT, beta1: c.beta1, beta2: c.beta2, orthRegWeight: c.orth_reg_weight,
      totalStep: c.total_step,
      // A pattern fixes the ranks (the file was pruned by a finished allocation); without one the adapter is whole
      // and further training runs the schedule again with the file's total_step, as PEFT would.
      ...(pattern ? { rankPattern } : {}),
    });
    const own = inner['config:validate'];
    return {
      ...inner,
      'config:validate'(ctx) {
        const problems = [...(own?.call(inner, ctx) ?? [])];
        const specs = new Map(ctx.model.specs.map((s) => [s.name, s.shape]));
        for (const m of modules) {
          const shape = specs.get(`${m.name}.weight`);
          if (!shape) problems.push(`${where}: ${m.name} is not a linear layer of this model`);
          else if (shape[0] !== m.outFeatures || shape[1] !== m.inFeatures) {
            problems.push(`${where}: ${m.name} is [${shape}] in the model but the adapter is for [${m.outFeatures}, ${m.inFeatures}]`);
          }
        }
        return problems;
      },
    };
  },
};
