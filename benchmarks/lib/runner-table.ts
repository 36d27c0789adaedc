/**
 * bench:runners' table per runner: tokens/s of one LoRA gradient step (benchmarks/lib/lora-step.ts) on stories260k and
 * on the SmolLM2-135M shape, and the largest relative difference of its gradients from onnxruntime-node's CPU (the
 * reference, `cpu`). A runner that cannot run here is listed with the reason, not measured.
 */
import { compile, type Executable } from '../../core/compile.ts';
import type { HostTensor } from '../../core/ir/host.ts';
import { maxRelError } from '../../runners/conformance.ts';
import type { Runner } from '../../runners/types.ts';
import type { LoraStep } from './lora-step.ts';

export interface RunnerEntry {
  /** The JSON key: cpu, wasm, sidecar-cpu, webgpu, ... */
  key: string;
  label: string;
  make(): Runner | Promise<Runner>;
}

export interface RunnerFigures {
  available: boolean;
  reason?: string;
  stories_lora_tok_s?: number;
  smollm_lora_tok_s?: number;
  max_rel_grad_diff?: number;
}

export interface ModelCase {
  /** 'stories' or 'smollm': the JSON fields' prefix. */
  key: 'stories' | 'smollm';
  step: LoraStep;
  /** Timed runs after one untimed warm-up run. */
  runs: number;
}

const median = (xs: readonly number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** Compiles and times one case on one runner; the gradients of its first run are returned for comparison. */
async function timeCase(runner: Runner, c: ModelCase): Promise<{ tokS: number; grads: Record<string, HostTensor> }> {
  let exe: Executable | undefined;
  try {
    exe = await compile(c.step.graph, { resident: c.step.resident, runner });
    const first = await exe.run(c.step.feeds);
    const grads = Object.fromEntries(c.step.grads.map((n) => [n, first[n]!]));
    const seconds: number[] = [];
    for (let i = 0; i < c.runs; i++) {
      const t0 = performance.now();
      await exe.run(c.step.feeds);
      seconds.push((performance.now() - t0) / 1000);
    }
    return { tokS: c.step.tokens / median(seconds), grads };
  } finally {
    await exe?.release();
  }
}

/** Every runner on every case, the first entry being the reference the others' gradients are compared with. */
export async function measureRunners(entries: readonly RunnerEntry[], cases: readonly ModelCase[], log: (line: string) => void): Promise<Record<string, RunnerFigures>> {
  const out: Record<string, RunnerFigures> = {};
  const reference = new Map<string, Record<string, HostTensor>>();
  for (const [k, e] of entries.entries()) {
    const figures: RunnerFigures = { available: true };
    let worst = 0;
    try {
      const runner = await e.make();
      for (const c of cases) {
        const { tokS, grads } = await timeCase(runner, c);
        figures[`${c.key}_lora_tok_s`] = +tokS.toFixed(1);
        if (k === 0) reference.set(c.key, grads);
        else for (const [n, g] of Object.entries(grads)) worst = Math.max(worst, maxRelError(g, reference.get(c.key)![n]!));
        log(`${e.label}: ${c.key} ${tokS.toFixed(1)} tok/s`);
      }
      figures.max_rel_grad_diff = +worst.toExponential(2);
    } catch (err) {
      if (k === 0) throw err; // without the reference nothing can be compared
      out[e.key] = { available: false, reason: (err as Error).message.split('\n')[0]! };
      log(`${e.label}: not available (${out[e.key]!.reason})`);
      continue;
    }
    out[e.key] = figures;
  }
  return out;
}

/** The table's rows: runner, tok/s per case, gradient difference (or the reason it was not run). */
export function runnerRows(entries: readonly RunnerEntry[], figures: Record<string, RunnerFigures>): string[][] {
  return entries.map((e) => {
    const f = figures[e.key]!;
    // onnxruntime's messages start with its source location: the table keeps their last sentence, the JSON all of it.
    if (!f.available) return [e.key, e.label, '-', '-', `not available: ${f.reason!.split(/(?<=\.) /).at(-1)!.slice(0, 100)}`];
    return [e.key, e.label, f.stories_lora_tok_s?.toFixed(0) ?? '-', f.smollm_lora_tok_s?.toFixed(1) ?? '-', f.max_rel_grad_diff!.toExponential(1)];
  });
}
