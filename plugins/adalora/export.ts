/**
 * Exports: the merged weight W + scaling · B (A ⊙ E), and the PEFT adapter folder (`adapter_config.json` with
 * `peft_type: "ADALORA"` and `rank_pattern`, `adapter_model.safetensors` pruned to the kept triplets as PEFT's
 * `resize_state_dict_by_rank_pattern` does).
 */
import { hostTensor, type HostTensor } from '../../core/index.ts';
import { writeAdapterFolder } from '../peft/folder.ts';
import type { AllocatedModule, RankPattern } from './allocator.ts';
import { loraAName, loraBName, loraEName } from './layer.ts';

/** `adapter_config.json` of an AdaLoRA adapter, PEFT's field names. */
export interface PeftAdaloraConfig {
  peft_type: 'ADALORA';
  task_type: 'CAUSAL_LM';
  /** LoraConfig's r: unused by AdaLoRA; PEFT warns when it is not its default 8. */
  r: number;
  init_r: number;
  target_r: number;
  lora_alpha: number;
  lora_dropout: number;
  target_modules: string[] | string;
  bias: 'none';
  fan_in_fan_out: false;
  tinit: number;
  tfinal: number;
  deltaT: number;
  beta1: number;
  beta2: number;
  orth_reg_weight: number;
  total_step: number;
  /** `"<module>.lora_E"` -> one boolean per initial rank, or null before the first masking. */
  rank_pattern: Record<string, boolean[]> | null;
  base_model_name_or_path: string | null;
  inference_mode: boolean;
}

const tensorOf = (trained: ReadonlyMap<string, HostTensor>, name: string): HostTensor => {
  const t = trained.get(name);
  if (!t) throw new Error(`adalora export: missing ${name}`);
  return t;
};

/** W + scaling · B (A ⊙ E) for every module, as new tensors (the inputs are not changed). */
export function mergeAdalora(
  weights: ReadonlyMap<string, HostTensor>, trained: ReadonlyMap<string, HostTensor>, modules: readonly AllocatedModule[], scaling: number,
): Map<string, HostTensor> {
  const out = new Map(weights);
  for (const { name, r, inFeatures: inp, outFeatures: outF } of modules) {
    const key = `${name}.weight`;
    const base = weights.get(key);
    if (!base) throw new Error(`adalora merge: missing ${key}`);
    const a = tensorOf(trained, loraAName(name)).data as Float32Array; // [r, in]
    const e = tensorOf(trained, loraEName(name)).data as Float32Array; // [r, 1]
    const b = tensorOf(trained, loraBName(name)).data as Float32Array; // [out, r]
    const w = new Float32Array(base.data as Float32Array); // [out, in]
    const row = new Float64Array(inp);
    for (let o = 0; o < outF; o++) {
      row.fill(0);
      for (let k = 0; k < r; k++) {
        const be = b[o * r + k]! * e[k]!; // a masked triplet (λ = 0) adds nothing
        if (be === 0) continue;
        for (let i = 0; i < inp; i++) row[i]! += be * a[k * inp + i]!;
      }
      for (let i = 0; i < inp; i++) w[o * inp + i] = w[o * inp + i]! + scaling * row[i]!;
    }
    out.set(key, hostTensor('float32', base.shape, w));
  }
  return out;
}

/** Rows `keep` of a row-major [rows, cols] matrix. */
function keepRows(data: Float32Array, cols: number, keep: readonly boolean[]): Float32Array {
  const out: number[] = [];
  keep.forEach((k, i) => {
    if (k) for (let j = 0; j < cols; j++) out.push(data[i * cols + j]!);
  });
  return Float32Array.from(out);
}

/** Columns `keep` of a row-major [rows, cols] matrix. */
function keepColumns(data: Float32Array, rows: number, keep: readonly boolean[]): Float32Array {
  const cols = keep.length;
  const out: number[] = [];
  for (let o = 0; o < rows; o++) keep.forEach((k, i) => k && out.push(data[o * cols + i]!));
  return Float32Array.from(out);
}

/**
 * A, E, B of every module, pruned to the kept triplets: rows of A and E, columns of B. As PEFT, a tensor whose rank
 * already equals the number kept (an adapter loaded pruned) is written as it is.
 */
export function prunedTensors(trained: ReadonlyMap<string, HostTensor>, modules: readonly AllocatedModule[], pattern: RankPattern | null): Map<string, HostTensor> {
  const out = new Map<string, HostTensor>();
  for (const m of modules) {
    const a = tensorOf(trained, loraAName(m.name)), e = tensorOf(trained, loraEName(m.name)), b = tensorOf(trained, loraBName(m.name));
    const keep = pattern?.[m.name];
    const kept = keep ? keep.filter(Boolean).length : m.r;
    if (!keep || kept === m.r) {
      out.set(loraAName(m.name), a).set(loraEName(m.name), e).set(loraBName(m.name), b);
      continue;
    }
    if (keep.length !== m.r) throw new Error(`adalora export: rank pattern of ${m.name} has ${keep.length} entries but the module has rank ${m.r}`);
    out.set(loraAName(m.name), hostTensor('float32', [kept, m.inFeatures], keepRows(a.data as Float32Array, m.inFeatures, keep)));
    out.set(loraEName(m.name), hostTensor('float32', [kept, 1], keepRows(e.data as Float32Array, 1, keep)));
    out.set(loraBName(m.name), hostTensor('float32', [m.outFeatures, kept], keepColumns(b.data as Float32Array, m.outFeatures, keep)));
  }
  return out;
}

/** PEFT's rank_pattern keys: `<module>.lora_E`. */
export function peftRankPattern(pattern: RankPattern | null): Record<string, boolean[]> | null {
  if (!pattern) return null;
  return Object.fromEntries(Object.entries(pattern).map(([m, keep]) => [loraEName(m), [...keep]]));
}

/** Writes `dir/adapter_model.safetensors` (PEFT key prefix) and then `dir/adapter_config.json` (its presence marks completion). */
export async function writeAdaloraAdapter(dir: string, config: PeftAdaloraConfig, tensors: ReadonlyMap<string, HostTensor>): Promise<string[]> {
  return writeAdapterFolder(dir, config as unknown as Record<string, unknown>, tensors);
}
