/**
 * One case of bench:train in its own process (so its peak resident memory is its own):
 *   bun run benchmarks/lib/train-run.ts '<case JSON>'
 * Trains on packed text whose every sequence is exactly T tokens, then prints `@@train-result {...}` with the
 * steady-state tokens/s (median step time, the first two steps, which compile, excluded) and the peak RSS (VmHWM).
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { peakRssBytes } from '../../core/memory/index.ts';
import { parseTrainConfig } from '../../core/train/config.ts';
import { train } from '../../core/train/trainer.ts';
import { fullFinetune } from '../../plugins/full/index.ts';
import { lora } from '../../plugins/lora/index.ts';
import { SHARED } from './model-folder.ts';
import { sidecar } from '../../runners/sidecar.ts';
import { ortNodeRunner } from '../../runners/ort-node.ts';
import { reportToParent } from './child.ts';

export interface TrainCase {
  name: string; model: string; method: 'full' | 'lora'; B: number; T: number; steps: number;
  /** The trainer's memory.mmapThreshold (default: the config's default). */
  mmapThreshold?: number | false;
  /** train.optimizerOn (default 'host'). */
  optimizerOn?: 'host' | 'device';
  /** Run the steps on this sidecar (runners/sidecar.ts) instead of in this process. */
  sidecar?: { url: string; token: string };
  /** The text to train on (default ../shared's TinyStories). */
  textFile?: string;
  /** train.deterministic (default: the config's, true: the embedding gradient as ordered matrix products). */
  deterministic?: boolean;
  /** How the in-process runner drives onnxruntime (runners/ort-node.ts `binding`; default: its default). */
  binding?: 'c-api' | 'node';
  /** memory.arena (default false). */
  arena?: boolean;
}
export const TRAIN_TAG = '@@train-result ';

export async function runTrainCase(c: TrainCase) {
  const dir = mkdtempSync(join(tmpdir(), 'tuneforge-bench-train-'));
  try {
    // TinyStories text, repeated as needed, packed into sequences of exactly T tokens.
    const text = readFileSync(c.textFile ?? join(SHARED, 'data/tinystories/tiny_stories.txt'), 'utf8');
    const needChars = 4 * c.B * c.T * (c.steps + 1);
    writeFileSync(join(dir, 'train.txt'), text.repeat(Math.ceil(needChars / text.length)).slice(0, needChars * 2));
    const config = parseTrainConfig({
      model: c.model, output: join(dir, 'run'), seed: 0,
      data: { train: join(dir, 'train.txt'), format: 'text', maxLength: c.T, packText: true, textSplit: 'blank-line' },
      train: { steps: c.steps, batchSize: c.B, lr: 1e-4, optimizer: 'adamw', padMultiple: 16, optimizerOn: c.optimizerOn ?? 'host', ...(c.deterministic !== undefined ? { deterministic: c.deterministic } : {}) },
      export: { merged: false, adapters: false },
      memory: { ...(c.mmapThreshold !== undefined ? { mmapThreshold: c.mmapThreshold } : {}), ...(c.arena ? { arena: true } : {}) },
    });
    const plugins = c.method === 'full' ? [fullFinetune()] : [lora({ r: 8, alpha: 16, targets: ['q_proj', 'v_proj'] })];
    const runner = c.sidecar ? sidecar(c.sidecar.url, { token: c.sidecar.token }) : c.binding ? ortNodeRunner({ binding: c.binding }) : undefined;
    await train({ config, plugins, runner, resume: false, log: () => {}, progress: { isTTY: false, write: () => true } });
    const steps = readFileSync(join(config.output, 'metrics.jsonl'), 'utf8').split('\n').filter((l) => l.trim())
      .map((l) => JSON.parse(l) as Record<string, number>).filter((m) => m.step_s !== undefined);
    const times = steps.slice(2).map((m) => m.step_s!).sort((a, b) => a - b);
    const median = times[Math.floor(times.length / 2)]!;
    const updates = steps.slice(2).map((m) => m.update_s!).sort((a, b) => a - b);
    return {
      name: c.name, tok_s: (c.B * c.T) / median, step_s: median, update_s: updates[Math.floor(updates.length / 2)]!, peak_mb: peakRssBytes() / 2 ** 20, predicted_mb: steps[0]!.predicted_peak_mb,
      // The first step compiles, loads and uploads; the losses let runs on different runners be compared.
      first_step_s: steps[0]!.step_s!, losses: steps.map((m) => m.loss!),
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export type TrainResult = Awaited<ReturnType<typeof runTrainCase>>;

if (import.meta.main) {
  const result = await runTrainCase(JSON.parse(process.argv[2]!) as TrainCase);
  reportToParent(TRAIN_TAG, result);
}
