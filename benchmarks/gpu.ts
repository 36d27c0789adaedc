/**
 * bench:gpu — fine-tuning through a sidecar (`tuneforge sidecar`, a child process on loopback) on each execution
 * provider asked for, at real model sizes with random weights: the SmolLM2-135M shape and a 1B-parameter Llama shape
 * (TinyLlama-1.1B's), LoRA (r 8 on q, v) and full fine-tuning with `train.optimizerOn: 'device'` (one fused graph a
 * step; the parameters and moments stay on the sidecar). This is the benchmark for a GPU machine: the CPU provider
 * on the same machine, in the same run, is the baseline each figure is a ratio against.
 *
 * Per case: tokens/s (B x T over the median step time, the first two steps excluded), the first step's time (it
 * compiles, uploads the step and its weights, and builds the session), the sidecar's and the trainer's peak
 * resident memory, and the last step's loss, which must agree across providers (same data, same seed). Each case
 * runs in a fresh trainer process against a fresh sidecar, killed after --case-timeout seconds. A provider this
 * machine lacks is reported with the sidecar's own reason. Before that, one LoRA gradient step per provider in this
 * process (benchmarks/lib/runner-table.ts): tokens/s and the gradients' largest relative difference from the CPU.
 *
 *   bun run bench:gpu [--providers cuda,webgpu,cpu] [--models smollm,1b] [--methods lora,full] [--steps 5]
 *                     [--batch 4x256] [--case-timeout 300] [--deadline SECONDS] [--text FILE] [--no-grads] [--quick]
 *                     [--jsonl FILE]
 *
 * --quick: SmolLM2-135M only, 4 steps. --deadline: cases not started by then are reported as skipped. --jsonl: each
 * case's result is appended to FILE as it finishes, so a run stopped from outside keeps what it measured.
 */
import { appendFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { extname, join } from 'node:path';
import { SMOLLM2_135M, TINYLLAMA_1_1B, type RawConfig } from '../core/index.ts';
import { peakRssBytesOf } from '../core/memory/index.ts';
import { ortNodeRunner } from '../runners/ort-node.ts';
import { runChild } from './lib/child.ts';
import { loraStep } from './lib/lora-step.ts';
import { randomModelFolder, STORIES } from './lib/model-folder.ts';
import { benchOptions } from './lib/options.ts';
import { measureRunners, runnerRows, type ModelCase, type RunnerEntry, type RunnerFigures } from './lib/runner-table.ts';
import { startSidecarChild, type SidecarChild } from './lib/sidecar-child.ts';
import { TRAIN_TAG, type TrainCase, type TrainResult } from './lib/train-run.ts';

const opts = benchOptions(['providers', 'models', 'methods', 'steps', 'batch', 'case-timeout', 'deadline', 'text', 'no-grads', 'quick', 'jsonl']);
const quick = opts.string('quick') !== undefined;
const PROVIDERS = ['cuda', 'webgpu', 'cpu'] as const;
const MODELS: Record<string, { label: string; raw: RawConfig }> = {
  smollm: { label: 'SmolLM2-135M', raw: SMOLLM2_135M },
  '1b': { label: 'TinyLlama-1.1B shape', raw: TINYLLAMA_1_1B },
};
const METHODS = { lora: 'LoRA r 8 (q, v)', full: "full, optimizerOn 'device'" } as const;
type Method = keyof typeof METHODS;

function list<T extends string>(flag: string, value: string, known: readonly T[]): T[] {
  const items = value.split(',').map((s) => s.trim()).filter(Boolean);
  for (const i of items) if (!known.includes(i as T)) throw new Error(`--${flag}: unknown '${i}'; known: ${known.join(', ')}`);
  return items as T[];
}
const providers = list('providers', opts.string('providers') ?? PROVIDERS.join(','), PROVIDERS);
const models = list('models', opts.string('models') ?? (quick ? 'smollm' : 'smollm,1b'), Object.keys(MODELS));
const methods = list('methods', opts.string('methods') ?? 'lora,full', Object.keys(METHODS) as Method[]);
const steps = opts.number('steps') ?? (quick ? 4 : 5);
const batch = /^(\d+)x(\d+)$/.exec(opts.string('batch') ?? '4x256');
if (!batch) throw new Error(`--batch: expected BxT (e.g. 4x256), got '${opts.string('batch')}'`);
const [B, T] = [Number(batch[1]), Number(batch[2])];
const caseTimeoutS = opts.number('case-timeout') ?? 300;
const deadline = opts.number('deadline');
const started = performance.now();
const elapsedS = () => (performance.now() - started) / 1000;
const log = (line: string) => console.error(`[${elapsedS().toFixed(0).padStart(4)} s] ${line}`);

const dir = mkdtempSync(join(tmpdir(), 'tuneforge-bench-gpu-'));
const TOKEN = `bench-${crypto.randomUUID()}`;
writeFileSync(join(dir, 'token'), TOKEN);
// A load carries the model with its frozen weights (4.4 GB for the 1B shape in float32), and a full fine-tuning run's
// first step feeds every parameter and moment (13 GB): the sidecar's limits are raised to fit.
const SIDECAR_ARGS = ['--max-body', '64GiB', '--max-held', '96GiB'];

interface CaseFigures { tok_s: number; step_s: number; first_step_s: number; sidecar_peak_mb?: number; trainer_peak_mb: number; loss_last: number }
type CaseResult = CaseFigures | { error: string } | { skipped: string };

/** The sidecar's own reason for not starting, without onnxruntime's colour codes and log lines before it. */
function startFailure(e: unknown): string {
  const text = (e as Error).message.replace(/\u001b\[[0-9;]*m/g, '');
  const i = text.indexOf('sidecar failed: ');
  return (i >= 0 ? text.slice(i + 'sidecar failed: '.length) : text).split('\n').map((l) => l.trim()).filter(Boolean).join(' ');
}

/** Starts and stops a sidecar on each provider: the ones that cannot start here are reported once, with the reason. */
async function probeProviders(): Promise<Record<string, { available: boolean; reason?: string }>> {
  const out: Record<string, { available: boolean; reason?: string }> = {};
  for (const p of providers) {
    try {
      await (await startSidecarChild({ provider: p, tokenFile: join(dir, 'token'), quiet: true })).stop();
      out[p] = { available: true };
    } catch (e) {
      out[p] = { available: false, reason: startFailure(e) };
    }
    log(`${p} sidecar: ${out[p]!.available ? 'starts' : `not available: ${out[p]!.reason}`}`);
  }
  return out;
}

/** One training run through a fresh sidecar on `provider`. */
async function runCase(provider: string, modelDir: string, method: Method, name: string): Promise<CaseResult> {
  let child: SidecarChild;
  try {
    child = await startSidecarChild({ provider, tokenFile: join(dir, 'token'), extraArgs: SIDECAR_ARGS });
  } catch (e) {
    return { error: startFailure(e) };
  }
  try {
    const c: TrainCase = {
      name, model: modelDir, method: method === 'full' ? 'full' : 'lora', B, T, steps,
      optimizerOn: method === 'full' ? 'device' : 'host', sidecar: { url: child.url, token: TOKEN },
      ...(opts.string('text') ? { textFile: opts.string('text')! } : {}),
    };
    const r = await runChild<TrainResult>(join(import.meta.dir, `lib/train-run${extname(import.meta.path)}`), [JSON.stringify(c)], TRAIN_TAG, {
      label: `case ${name}`, timeoutMs: caseTimeoutS * 1000, quiet: true,
    });
    const sidecarPeak = peakRssBytesOf(child.pid);
    return {
      tok_s: +r.tok_s.toFixed(1), step_s: +r.step_s.toFixed(4), first_step_s: +r.first_step_s.toFixed(2),
      ...(sidecarPeak !== undefined ? { sidecar_peak_mb: Math.round(sidecarPeak / 2 ** 20) } : {}),
      trainer_peak_mb: Math.round(r.peak_mb), loss_last: +r.losses.at(-1)!.toFixed(5),
    };
  } catch (e) {
    return { error: (e as Error).message.split('\n').slice(0, 6).join(' | ') };
  } finally {
    await child.stop();
  }
}

const figures = (r: CaseResult | undefined): CaseFigures | undefined => (r && 'tok_s' in r ? r : undefined);
let grads: Record<string, RunnerFigures> = {};
const gradEntries: RunnerEntry[] = [
  { key: 'cpu', label: 'onnxruntime-node, CPU provider', make: () => ortNodeRunner() },
  ...providers.filter((p) => p !== 'cpu').map((p) => ({ key: p, label: `onnxruntime-node, ${p} provider`, make: () => ortNodeRunner({ executionProviders: [p] }) })),
];
const results: Record<string, Record<string, CaseResult>> = {};
let available: Awaited<ReturnType<typeof probeProviders>> = {};
try {
  available = await probeProviders();
  const folders: Record<string, string> = {};
  for (const m of models) {
    log(`writing the random ${MODELS[m]!.label} model folder (cached in ${tmpdir()})`);
    folders[m] = await randomModelFolder(join(tmpdir(), `tuneforge-${m}-random`), MODELS[m]!.raw);
  }
  if (opts.string('no-grads') === undefined) {
    const cases: ModelCase[] = [{ key: 'stories', step: await loraStep(STORIES, 16, 64), runs: 5 }];
    if (folders.smollm) cases.push({ key: 'smollm', step: await loraStep(folders.smollm, 1, 128), runs: 3 });
    grads = await measureRunners(gradEntries, cases, log);
    if (opts.string('jsonl')) appendFileSync(opts.string('jsonl')!, `${JSON.stringify({ grads })}\n`);
  }
  for (const m of models) for (const method of methods) {
    const key = `${m}_${method}`;
    results[key] = {};
    for (const p of providers) {
      if (!available[p]!.available) {
        results[key][p] = { skipped: `the ${p} sidecar does not start here` };
        continue;
      }
      if (deadline !== undefined && elapsedS() > deadline) {
        results[key][p] = { skipped: `not started: past the ${deadline} s deadline` };
        continue;
      }
      log(`${MODELS[m]!.label} ${METHODS[method]} ${B}x${T} on the ${p} sidecar ...`);
      const r = (results[key][p] = await runCase(p, folders[m]!, method, `${key}-${p}`));
      if (opts.string('jsonl')) appendFileSync(opts.string('jsonl')!, `${JSON.stringify({ case: key, provider: p, ...r })}\n`);
      const f = figures(r);
      log(f ? `  ${f.tok_s} tok/s (step ${f.step_s} s, first step ${f.first_step_s} s, loss ${f.loss_last})` : `  ${JSON.stringify(r).slice(0, 400)}`);
    }
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}

if (Object.keys(grads).length) {
  console.log('bench:gpu — one LoRA gradient step per provider in this process (frozen weights resident)');
  for (const r of runnerRows(gradEntries, grads)) console.log(`  ${r.join('  ')}`);
  console.log('');
}
const head = ['case', ...providers.map((p) => `${p} tok/s`), ...providers.filter((p) => p !== 'cpu').map((p) => `${p} / cpu`), 'first step s', 'last loss'];
const rows: string[][] = [];
const speedup: Record<string, Record<string, number>> = {};
for (const [key, byProvider] of Object.entries(results)) {
  const [m, method] = key.split('_') as [string, Method];
  const cpu = figures(byProvider.cpu);
  const ratios = providers.filter((p) => p !== 'cpu').map((p) => {
    const f = figures(byProvider[p]);
    if (!f || !cpu) return '-';
    (speedup[key] ??= {})[p] = +(f.tok_s / cpu.tok_s).toFixed(2);
    return `${(f.tok_s / cpu.tok_s).toFixed(2)}x`;
  });
  rows.push([
    `${MODELS[m]!.label} ${METHODS[method]}`,
    ...providers.map((p) => figures(byProvider[p])?.tok_s.toFixed(1) ?? ('error' in byProvider[p]! ? 'failed' : available[p]!.available ? 'skipped' : 'n/a')),
    ...ratios,
    providers.map((p) => figures(byProvider[p])?.first_step_s.toFixed(1) ?? '-').join(' / '),
    providers.map((p) => figures(byProvider[p])?.loss_last.toFixed(4) ?? '-').join(' / '),
  ]);
}
const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
console.log(`bench:gpu — training through a loopback sidecar, ${B}x${T} tokens a step, ${steps} steps (first 2 excluded); per provider: ${providers.join(' / ')}`);
for (const r of [head, ...rows]) console.log(`  ${r.map((c, i) => (i === 0 ? c.padEnd(w[i]!) : c.padStart(w[i]!))).join('  ')}`);
for (const [p, a] of Object.entries(available)) if (!a.available) console.log(`  ${p}: not available: ${a.reason}`);
for (const [key, byProvider] of Object.entries(results)) {
  for (const [p, r] of Object.entries(byProvider)) if ('error' in r || ('skipped' in r && available[p]!.available)) console.log(`  ${key} on ${p}: ${'error' in r ? r.error : r.skipped}`);
}
console.log(JSON.stringify({ batch: [B, T], steps, providers: available, grads, cases: results, speedup_vs_cpu: speedup }));
