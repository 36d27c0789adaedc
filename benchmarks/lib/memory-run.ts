/**
 * One case of bench:memory, run in its own process so its peak resident memory is its own:
 *
 *   bun run benchmarks/lib/memory-run.ts '<case as JSON>'
 *
 * Writes a packed text dataset whose every example is exactly `T` tokens (so each micro-batch is the planned worst
 * case B x T), builds the config, asks the planner for its prediction (`planMemory`), trains `steps` steps with
 * `train()` (no eval, no export) and prints one line `@@memory-result {...}` with the prediction, its breakdown and
 * the process's peak resident memory (VmHWM) after training; also the RSS and peak after each step (metrics.jsonl).
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { peakRssBytes, planMemory, rssBytes } from '../../core/memory/index.ts';
import { parseTrainConfig } from '../../core/train/config.ts';
import { train } from '../../core/train/trainer.ts';
import { fullFinetune } from '../../plugins/full/index.ts';
import { lora } from '../../plugins/lora/index.ts';

export interface MemoryCase {
  name: string;
  /** A model folder (config.json, model.safetensors, tokenizer files). */
  model: string;
  method: 'full' | 'lora';
  checkpointing: boolean;
  B: number;
  T: number;
  steps: number;
}

export interface MemoryResult {
  name: string;
  predictedBytes: number;
  measuredBytes: number;
  /** Peak (VmHWM) before train() was called: imports, planner and data file. */
  beforeTrainBytes: number;
  items: { component: string; bytes: number; note?: string }[];
  /** Per step: current RSS and peak so far, in MiB (from the run's metrics). */
  steps: { rss_mb: number; peak_rss_mb: number; step_s: number }[];
  seconds: number;
}

export const RESULT_TAG = '@@memory-result ';

const SUBJECTS = ['The little cat', 'A big dog', 'Lily', 'Tom', 'The old bird', 'Mom', 'The happy girl', 'A small fish', 'Ben', 'The red ball'];
const ACTIONS = ['ran to the park', 'sat under a tree', 'ate a sweet cake', 'saw the bright sun', 'played with a friend', 'was very happy', 'went to sleep', 'found a shiny box', 'jumped over the log', 'sang a song'];

/** Deterministic short stories, one per paragraph, enough to pack into `sequences` sequences of `T` tokens. */
function writeStories(path: string, sequences: number, T: number): void {
  // The stories260k tokenizer gives roughly one token per 3 characters of this text; write twice what is needed.
  const chars = 2 * 3 * sequences * T + 1000;
  const docs: string[] = [];
  let total = 0;
  for (let i = 0; total < chars; i++) {
    const sentences: string[] = [];
    for (let k = 0; k < 4 + (i % 5); k++) sentences.push(`${SUBJECTS[(i * 7 + k * 3) % SUBJECTS.length]} ${ACTIONS[(i * 3 + k * 5) % ACTIONS.length]}.`);
    const doc = sentences.join(' ');
    docs.push(doc);
    total += doc.length + 2;
  }
  writeFileSync(path, `${docs.join('\n\n')}\n`);
}

export async function runCase(c: MemoryCase): Promise<MemoryResult> {
  const dir = mkdtempSync(join(tmpdir(), 'tuneforge-memory-'));
  try {
    const dataFile = join(dir, 'train.txt');
    writeStories(dataFile, c.B * c.steps, c.T);
    const config = parseTrainConfig({
      model: c.model,
      output: join(dir, 'run'),
      seed: 0,
      // Packed text: every example is exactly T tokens and every position carries loss.
      data: { train: dataFile, format: 'text', maxLength: c.T, packText: true },
      train: { steps: c.steps, batchSize: c.B, lr: 1e-4, optimizer: 'adamw', padMultiple: 16 },
      eval: { every: 0 },
      checkpoint: { every: 0, keep: 1 },
      export: { merged: false, adapters: false },
      memory: { checkpointing: c.checkpointing },
    });
    const plugins = c.method === 'full' ? [fullFinetune()] : [lora({ r: 8, alpha: 16, targets: ['q_proj', 'v_proj'] })];
    const plan = await planMemory(config, plugins);
    const beforeTrainBytes = peakRssBytes();
    const t0 = performance.now();
    const log = (line: string) => process.stderr.write(`[${c.name}] ${line}\n`);
    const r = await train({ config, plugins, resume: false, log, progress: { isTTY: false, write: () => true } });
    const measuredBytes = peakRssBytes();
    const seconds = (performance.now() - t0) / 1000;
    if (r.step !== c.steps) throw new Error(`trained ${r.step} steps, expected ${c.steps}`);
    const steps = readFileSync(join(config.output, 'metrics.jsonl'), 'utf8').split('\n').filter((l) => l.trim())
      .map((l) => JSON.parse(l) as Record<string, number>).filter((m) => m.loss !== undefined)
      .map((m) => ({ rss_mb: m.rss_mb!, peak_rss_mb: m.peak_rss_mb!, step_s: m.step_s! }));
    return {
      name: c.name, predictedBytes: plan.totalBytes, measuredBytes, beforeTrainBytes,
      items: plan.items.map((i) => ({ component: i.component, bytes: i.bytes, note: i.note })), steps, seconds,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.main) {
  const arg = process.argv[2];
  if (!arg) throw new Error("usage: bun run benchmarks/lib/memory-run.ts '<case JSON>'");
  const result = await runCase(JSON.parse(arg) as MemoryCase);
  process.stdout.write(`${RESULT_TAG}${JSON.stringify({ ...result, rssAtEnd: rssBytes() })}\n`);
  process.exit(0);
}
