/**
 * lisa-norms — the observation behind LISA (Pan et al. 2024, Figure 2) on stories260k: how far each layer's weights
 * move from the base model, ‖θ_l − θ_l⁰‖, under full fine-tuning, LoRA and LISA, drawn as one chart (layer groups
 * on x, one series per technique).
 *
 * Each method trains stories260k for `--steps` steps on the Alpaca 1k sample (instruction data, far from the
 * TinyStories pretraining, so the weights have to move) with AdamW at the same learning rate, batch 8, sequences of
 * up to 128 tokens, no clipping. LoRA adapts every linear layer (r 8, α 16) and its change is the merged W + s·BA;
 * LISA uses LMFlow's γ 2, K 20 (uniform) and, as a fourth series, the same with gradient-norm sampling.
 *
 *   bun run benchmarks/lisa-norms.ts                          # 200 steps per method (about 2 min on 2 cores)
 *   bun run benchmarks/lisa-norms.ts --steps 400 --out runs/lisa-norms --lr 1e-3
 *
 * Writes `<out>/layer-norms.svg` (absolute change) and `<out>/layer-norms-relative.svg` (‖θ − θ⁰‖ / ‖θ⁰‖); prints a
 * table and ends with one JSON line: {"steps", "groups", "methods": {name: {"change", "relative", "step_s", "loss"}}}.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { loadModel, type HostTensor, type Plugin } from '../core/index.ts';
import { parseTrainConfig } from '../core/train/config.ts';
import { train } from '../core/train/trainer.ts';
import { fullFinetune } from '../plugins/full/index.ts';
import { lisa } from '../plugins/lisa/index.ts';
import { layerChangeNorms, layerNormChart } from '../plugins/lisa/norms.ts';
import { lora, type LoraApi } from '../plugins/lora/index.ts';
import { benchOptions } from './lib/options.ts';

const ROOT = resolve(import.meta.dir, '..');
const STORIES = resolve(ROOT, '../shared/models/stories260k');
const DATA = resolve(ROOT, '../shared/data/alpaca/alpaca_data_1k.json');

const opts = benchOptions(['steps', 'lr', 'out']);
const option = (name: string, fallback: string) => opts.string(name) ?? fallback;
const steps = Number(option('steps', '200'));
const lr = Number(option('lr', '1e-3'));
const out = resolve(option('out', join(ROOT, 'runs/lisa-norms')));

interface Method {
  name: string;
  plugins: () => Plugin[];
  /** The tuned weights to compare with the base (merged for adapters). */
  tuned?: (plugins: Plugin[], base: ReadonlyMap<string, HostTensor>, trained: ReadonlyMap<string, HostTensor>) => Map<string, HostTensor>;
}

const METHODS: Method[] = [
  { name: 'full', plugins: () => [fullFinetune()] },
  {
    name: 'LoRA (all linear, r 8)',
    plugins: () => [lora({ r: 8, alpha: 16, targets: 'all-linear' })],
    tuned: (plugins, base, trained) => (plugins[0]!.api as LoraApi).merge(base, trained),
  },
  { name: 'LISA (γ 2, K 20, uniform)', plugins: () => [lisa({ activeLayers: 2, interval: 20 })] },
  { name: 'LISA (γ 2, K 20, grad-norm)', plugins: () => [lisa({ activeLayers: 2, interval: 20, sampling: 'grad-norm' })] },
];

const { config: modelConfig, weights: base } = await loadModel(STORIES);
mkdirSync(out, { recursive: true });
const results: Record<string, { change: number[]; relative: number[]; step_s: number; loss: number; switches?: string }> = {};
let groups: string[] = [];

for (const method of METHODS) {
  const dir = mkdtempSync(join(tmpdir(), 'tuneforge-lisa-norms-'));
  try {
    const config = parseTrainConfig({
      model: STORIES, output: dir, seed: 0,
      data: { train: DATA, maxLength: 128 },
      train: { steps, batchSize: 8, lr, schedule: 'constant', maxGradNorm: null },
      export: { merged: false, adapters: false },
    });
    const plugins = method.plugins();
    const t0 = performance.now();
    const r = await train({ config, plugins, resume: false, log: () => {}, progress: { isTTY: false, write: () => true } });
    const seconds = (performance.now() - t0) / 1000;
    const records = readFileSync(join(dir, 'metrics.jsonl'), 'utf8').split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l) as Record<string, number>);
    const losses = records.filter((m) => m.loss !== undefined).map((m) => m.loss!);
    const tail = losses.slice(-20);
    const tuned = method.tuned ? method.tuned(plugins, base, r.trained) : r.trained;
    const change = layerChangeNorms(modelConfig, base, tuned);
    const relative = layerChangeNorms(modelConfig, base, tuned, { relative: true });
    groups = change.groups;
    const lisaApi = plugins[0]!.api as { switches?: () => { step: number; layers: number[] }[] } | undefined;
    results[method.name] = {
      change: change.values, relative: relative.values, step_s: seconds / steps, loss: tail.reduce((a, b) => a + b, 0) / tail.length,
      ...(lisaApi?.switches ? { switches: lisaApi.switches().map((s) => s.layers.join('+')).join(' ') } : {}),
    };
    process.stderr.write(`${method.name}: ${steps} steps in ${seconds.toFixed(1)} s\n`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const series = (key: 'change' | 'relative') => Object.entries(results).map(([name, r]) => ({ name, values: r[key] }));
writeFileSync(join(out, 'layer-norms.svg'), layerNormChart({
  groups, series: series('change'), title: `weight change per layer (stories260k, Alpaca, ${steps} steps; emb = tied head)`,
}));
writeFileSync(join(out, 'layer-norms-relative.svg'), layerNormChart({
  groups, series: series('relative'), yLabel: '‖θ − θ₀‖ / ‖θ₀‖', title: `relative weight change per layer (stories260k, Alpaca, ${steps} steps)`,
}));

const pad = (s: string, n: number) => s.padStart(n);
console.log(`\n${'group'.padEnd(12)}${Object.keys(results).map((n) => pad(n.replace(/ \(.*/, '') + (n.includes('grad') ? '-gn' : ''), 12)).join('')}   (‖θ − θ₀‖)`);
groups.forEach((g, i) => console.log(`${g.padEnd(12)}${Object.values(results).map((r) => pad(r.change[i]!.toFixed(4), 12)).join('')}`));
console.log(`${'s/step'.padEnd(12)}${Object.values(results).map((r) => pad(r.step_s.toFixed(3), 12)).join('')}`);
console.log(`${'final loss'.padEnd(12)}${Object.values(results).map((r) => pad(r.loss.toFixed(3), 12)).join('')}`);
for (const [name, r] of Object.entries(results)) if (r.switches) console.log(`${name} windows: ${r.switches}`);
console.log(`charts: ${join(out, 'layer-norms.svg')}, ${join(out, 'layer-norms-relative.svg')}`);
console.log(JSON.stringify({ steps, lr, groups, methods: Object.fromEntries(Object.entries(results).map(([k, v]) => [k, { change: v.change, relative: v.relative, step_s: v.step_s, loss: v.loss }])) }));
