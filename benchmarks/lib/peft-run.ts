/**
 * One measurement of bench:peft-memory in its own process (its peak is its own). Cases:
 * - `inference`: the model's weights and one forward pass (loss only) at B x T: the baseline.
 * - `zo` / `forward-grad`: full-parameter training steps with that estimator at the same B x T.
 * - `lisa`: a long LISA run on stories260k; reports the peak after each switch.
 * Prints `@@peft-result {...}`.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { compile, hostTensor, trace } from '../../core/index.ts';
import { buildCausalLM, causalLMLoss } from '../../core/models/llama.ts';
import { loadModel } from '../../core/models/load.ts';
import { peakRssBytes, planMemory } from '../../core/memory/index.ts';
import { parseTrainConfig } from '../../core/train/config.ts';
import { train } from '../../core/train/trainer.ts';
import { forwardGrad, fullFinetune, lisa, zo } from '../../plugins/index.ts';
import { SHARED } from './model-folder.ts';
import { reportToParent } from './child.ts';

export interface PeftCase { kind: 'inference' | 'zo' | 'forward-grad' | 'lisa'; model: string; B: number; T: number; steps: number }
export const PEFT_TAG = '@@peft-result ';
const mb = (b: number) => b / 2 ** 20;

async function inference(c: PeftCase) {
  const { config, weights } = await loadModel(c.model);
  const graph = trace((g) => ({ loss: causalLMLoss(g, buildCausalLM(g, config, { batch: c.B, seq: c.T })) }));
  const exe = await compile(graph);
  const ids = hostTensor('int64', [c.B, c.T], Array.from({ length: c.B * c.T }, (_, i) => (i * 7 + 3) % 500));
  for (let i = 0; i < 2; i++) await exe.run({ ...Object.fromEntries(weights), input_ids: ids, labels: ids });
  return { peak_mb: mb(peakRssBytes()) };
}

async function training(c: PeftCase) {
  const dir = mkdtempSync(join(tmpdir(), 'tuneforge-peft-'));
  try {
    const text = readFileSync(join(SHARED, 'data/tinystories/tiny_stories.txt'), 'utf8');
    writeFileSync(join(dir, 'train.txt'), text.slice(0, Math.max(200_000, 8 * c.B * c.T * 20)));
    const estimator = c.kind === 'zo' ? [fullFinetune(), zo()] : c.kind === 'forward-grad' ? [fullFinetune(), forwardGrad()] : [lisa({ activeLayers: 2, interval: 20 })];
    const config = parseTrainConfig({
      model: c.model, output: join(dir, 'run'), seed: 0,
      data: { train: join(dir, 'train.txt'), format: 'text', maxLength: c.T, textSplit: 'blank-line' },
      // Forward-Grad hands its estimate to plain SGD (no optimizer state); the ZO estimator updates by itself.
      train: { steps: c.steps, batchSize: c.B, lr: 1e-4, optimizer: c.kind === 'lisa' ? 'adamw' : 'sgd', maxGradNorm: c.kind === 'lisa' ? 1 : null },
      checkpoint: { every: 0 }, export: { merged: false, adapters: false },
    });
    const predicted = (await planMemory(config, estimator)).totalBytes;
    await train({ config, plugins: estimator, resume: false, log: () => {}, progress: { isTTY: false, write: () => true } });
    const metrics = readFileSync(join(config.output, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, number>).filter((m) => m.loss !== undefined);
    return { peak_mb: mb(peakRssBytes()), predicted_mb: mb(predicted), per_step: metrics.map((m) => ({ step: m.step!, peak_rss_mb: m.peak_rss_mb!, rss_mb: m.rss_mb!, optimizer_mb: m.optimizer_mb ?? 0 })) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.main) {
  const c = JSON.parse(process.argv[2]!) as PeftCase;
  const result = c.kind === 'inference' ? await inference(c) : await training(c);
  reportToParent(PEFT_TAG, { kind: c.kind, ...result });
}
