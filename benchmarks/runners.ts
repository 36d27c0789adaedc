/**
 * bench:runners — first, each runner this machine has (onnxruntime-node's CPU `cpu`, onnxruntime-web's wasm in this
 * process `wasm`, the loopback sidecar `sidecar-cpu`, onnxruntime-node's WebGPU `webgpu`): tokens/s of a LoRA
 * gradient step (r 8 on q, v; frozen weights resident) on stories260k 16x64 and on the SmolLM2-135M shape 1x128
 * (random weights), and its gradients' largest relative difference from `cpu` (benchmarks/lib/runner-table.ts).
 * The browser runners (headless Chromium) are measured by the conformance suite (tests/runners/), not here.
 * Then a stories260k training step in this process (onnxruntime-node) vs through a sidecar on loopback
 * (`tuneforge sidecar --provider cpu` in a child process, runners/sidecar.ts), LoRA (r 8 on q, v) and full
 * fine-tuning, batch 16 x 64 packed TinyStories tokens, and full fine-tuning with train.optimizerOn 'device' (in this
 * process the update's graphs; on the sidecar one fused graph a step, the parameters and moments kept there:
 * core/train/fused-step.ts). Per case: the median step time (the first two steps, which
 * compile and upload, excluded), the sidecar / in-process ratio, and the bytes a step sends and receives. Rounds
 * alternate in-process and sidecar runs (and which goes first), so a machine shared with other work slows both alike;
 * the figures are the median over rounds and, less sensitive to that sharing, the best round of each.
 *
 * With --smollm-full, full fine-tuning of the SmolLM2-135M shape (random weights, 4 x 256, 4 steps) too, with the
 * update on the host and with optimizerOn 'device': what the sidecar's traffic costs on a model of real size.
 *
 *   bun run bench:runners [--quick] [--steps N] [--rounds N] [--no-smollm] [--smollm-full]
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseTrainConfig } from '../core/train/config.ts';
import { train } from '../core/train/trainer.ts';
import { fullFinetune } from '../plugins/full/index.ts';
import { lora } from '../plugins/lora/index.ts';
import { sidecar, type SidecarRunner } from '../runners/sidecar.ts';
import type { Runner } from '../runners/types.ts';
import { benchOptions } from './lib/options.ts';
import { randomModelFolder, SHARED, STORIES } from './lib/model-folder.ts';
import { loraStep } from './lib/lora-step.ts';
import { startSidecarChild } from './lib/sidecar-child.ts';
import { measureRunners, runnerRows, type ModelCase, type RunnerEntry } from './lib/runner-table.ts';
import { SMOLLM2_135M } from '../core/index.ts';
import { ortNodeRunner } from '../runners/ort-node.ts';
import { ortWebRunner } from '../runners/ort-web.ts';

const opts = benchOptions(['quick', 'steps', 'rounds', 'no-smollm', 'smollm-full']);
const quick = opts.string('quick') !== undefined;
const steps = opts.number('steps') ?? (quick ? 8 : 20);
const rounds = opts.number('rounds') ?? (quick ? 1 : 5);
const [B, T] = [16, 64];
const TOKEN = `bench-${crypto.randomUUID()}`;

const dir = mkdtempSync(join(tmpdir(), 'tuneforge-bench-runners-'));
const text = readFileSync(join(SHARED, 'data/tinystories/tiny_stories.txt'), 'utf8');
const needChars = 4 * Math.max(B * T, 4 * 256) * (steps + 1);
writeFileSync(join(dir, 'train.txt'), text.repeat(Math.ceil(needChars / text.length)).slice(0, needChars * 2));
writeFileSync(join(dir, 'token'), TOKEN);

interface Measured { stepS: number; sentPerStep: number; receivedPerStep: number; loadBytes: number }

type Method = 'lora' | 'full' | 'full_device';

/** A model and batch shape the in-process / sidecar comparison trains. */
interface TrainCase { label: string; model: string; B: number; T: number; steps: number; methods: readonly Method[] }

async function measure({ model, B, T, steps }: TrainCase, method: Method, runner: Runner | undefined, tag: string): Promise<Measured> {
  const config = parseTrainConfig({
    model, output: join(dir, `run-${tag}`), seed: 0,
    data: { train: join(dir, 'train.txt'), format: 'text', maxLength: T, packText: true, textSplit: 'blank-line' },
    train: { steps, batchSize: B, lr: 1e-4, optimizer: 'adamw', padMultiple: 16, optimizerOn: method === 'full_device' ? 'device' : 'host' },
    export: { merged: false, adapters: false },
  });
  const plugins = method === 'lora' ? [lora({ r: 8, alpha: 16, targets: ['q_proj', 'v_proj'] })] : [fullFinetune()];
  const stats = (runner as SidecarRunner | undefined)?.stats;
  const times: number[] = [];
  let mark = { sent: 0, received: 0, runs: 0 }, end = mark;
  await train({
    config, plugins, runner, resume: false, log: () => {}, progress: { isTTY: false, write: () => true },
    onRecord: (r) => {
      if (r.step_s !== undefined && r.step! > 2) times.push(r.step_s);
      // After step 2 every session is loaded: what follows is the steady per-step traffic.
      if (r.step === 2 && stats) mark = { sent: stats.bytesSent, received: stats.bytesReceived, runs: stats.runs };
      // Up to the last step's record: the end of the run reads the state back (optimizerOn 'device'), once.
      if (r.step === steps && r.final === undefined && stats) end = { sent: stats.bytesSent, received: stats.bytesReceived, runs: stats.runs };
    },
  });
  times.sort((a, b) => a - b);
  const perStep = stats ? (end.sent - mark.sent) / (end.runs - mark.runs) : 0;
  return {
    stepS: times[Math.floor(times.length / 2)]!, sentPerStep: perStep,
    receivedPerStep: stats ? (end.received - mark.received) / (end.runs - mark.runs) : 0,
    loadBytes: stats ? mark.sent - perStep * mark.runs : 0, // the first two steps' sends, less their feeds: the uploads
  };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const child = await startSidecarChild({ provider: 'cpu', tokenFile: join(dir, 'token') });
const results: Record<string, Record<string, number>> = {};
const rows: string[][] = [];
let perRunner: Awaited<ReturnType<typeof measureRunners>> = {};
const entries: RunnerEntry[] = [
  { key: 'cpu', label: 'onnxruntime-node, CPU provider', make: () => ortNodeRunner() },
  { key: 'wasm', label: 'onnxruntime-web, wasm (this process)', make: () => ortWebRunner() },
  { key: 'sidecar-cpu', label: 'sidecar on loopback, CPU provider', make: () => sidecar(child.url, { token: TOKEN }) },
  { key: 'webgpu', label: "onnxruntime-node's WebGPU provider", make: () => ortNodeRunner({ provider: 'webgpu' }) },
];
try {
  const modelCases: ModelCase[] = [{ key: 'stories', step: await loraStep(STORIES, B, T), runs: quick ? 3 : 10 }];
  if (opts.string('no-smollm') === undefined) {
    const smol = await randomModelFolder(join(tmpdir(), 'tuneforge-smollm2-135m-random'), SMOLLM2_135M);
    modelCases.push({ key: 'smollm', step: await loraStep(smol, 1, 128), runs: quick ? 1 : 3 });
  }
  perRunner = await measureRunners(entries, modelCases, (l) => console.error(l));
  const cases: TrainCase[] = [{ label: `stories260k ${B}x${T}`, model: STORIES, B, T, steps, methods: ['lora', 'full', 'full_device'] }];
  if (opts.string('smollm-full') !== undefined) {
    const smol = await randomModelFolder(join(tmpdir(), 'tuneforge-smollm2-135m-random'), SMOLLM2_135M);
    cases.push({ label: 'SmolLM2-135M 4x256', model: smol, B: 4, T: 256, steps: 4, methods: ['full', 'full_device'] });
  }
  for (const c of cases) for (const method of c.methods) {
    const local: Measured[] = [], remote: Measured[] = [];
    const key = c.model === STORIES ? method : `smollm_${method}`;
    for (let r = 0; r < (c.model === STORIES ? rounds : 1); r++) {
      const runLocal = async () => local.push(await measure(c, method, undefined, `${key}-local-${r}`));
      const runRemote = async () => remote.push(await measure(c, method, sidecar(child.url, { token: TOKEN }), `${key}-sidecar-${r}`));
      if (r % 2 === 0) await runLocal().then(runRemote);
      else await runRemote().then(runLocal);
      console.error(`round ${r + 1}/${rounds} ${c.label} ${method}: in-process ${(local[r]!.stepS * 1000).toFixed(1)} ms, sidecar ${(remote[r]!.stepS * 1000).toFixed(1)} ms`);
    }
    const l = median(local.map((m) => m.stepS)), s = median(remote.map((m) => m.stepS));
    const lBest = Math.min(...local.map((m) => m.stepS)), sBest = Math.min(...remote.map((m) => m.stepS));
    const last = remote[remote.length - 1]!;
    results[key] = {
      in_process_ms: +(l * 1000).toFixed(2), sidecar_ms: +(s * 1000).toFixed(2), ratio: +(s / l).toFixed(3),
      best_in_process_ms: +(lBest * 1000).toFixed(2), best_sidecar_ms: +(sBest * 1000).toFixed(2), best_ratio: +(sBest / lBest).toFixed(3),
      sent_kib_per_step: +(last.sentPerStep / 1024).toFixed(1), received_kib_per_step: +(last.receivedPerStep / 1024).toFixed(1),
      load_kib: +(last.loadBytes / 1024).toFixed(1),
    };
    const x = results[key]!;
    rows.push([`${c.label} ${method === 'full_device' ? "full, optimizerOn 'device'" : method}`, x.in_process_ms!.toFixed(1), x.sidecar_ms!.toFixed(1), `${x.ratio!.toFixed(2)}x`,
      `${x.best_in_process_ms!.toFixed(1)} / ${x.best_sidecar_ms!.toFixed(1)} = ${x.best_ratio!.toFixed(2)}x`, x.sent_kib_per_step!.toFixed(0), x.received_kib_per_step!.toFixed(0), x.load_kib!.toFixed(0)]);
  }
} finally {
  await child.stop();
  rmSync(dir, { recursive: true, force: true });
}

const runnerHead = ['runner', '', `stories260k ${B}x${T} LoRA tok/s`, 'SmolLM2-135M 1x128 LoRA tok/s', 'max rel grad diff vs cpu'];
const rw = runnerHead.map((h, i) => Math.max(h.length, ...runnerRows(entries, perRunner).map((r) => r[i]!.length)));
console.log('bench:runners — one LoRA gradient step per runner (frozen weights resident; median of the timed runs)');
for (const r of [runnerHead, ...runnerRows(entries, perRunner)]) console.log(`  ${r.map((c, i) => (i < 2 || i === 4 ? c.padEnd(rw[i]!) : c.padStart(rw[i]!))).join('  ')}`);
console.log('');
const head = ['case', 'in-process ms', 'sidecar ms', 'ratio', 'best rounds (ms)', 'sent KiB/step', 'received KiB/step', 'upload KiB'];
const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
console.log(`bench:runners (median step time over ${rounds} round(s) of ${steps} steps, first 2 excluded; sidecar: loopback, CPU provider, child process)`);
for (const r of [head, ...rows]) console.log(`  ${r.map((c, i) => (i === 0 ? c.padEnd(w[i]!) : c.padStart(w[i]!))).join('  ')}`);
console.log(JSON.stringify({ runners: perRunner, sidecar_overhead: results }));
