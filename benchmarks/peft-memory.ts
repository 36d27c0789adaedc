/**
 * bench:peft-memory — the memory claims of the techniques that stress the plugin API:
 * - zeroth-order (full-parameter ZO-SGD) and Forward-Grad peaks vs an inference forward pass at the same batch
 *   (SmolLM2-135M shape, random weights; targets 1.1x and 2.5x);
 * - NF4: measured bytes per parameter of the frozen linear weights of the SmolLM2-135M shape (target <= 0.55);
 * - LISA: peak memory over a 1,000-step run on stories260k, flat after the first switch (peak after the last switch
 *   divided by peak after the first).
 * Every figure comes from its own process.   bun run bench:peft-memory [--quick]
 */
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { SMOLLM2_135M } from '../core/index.ts';
import { randomModelFolder, STORIES } from './lib/model-folder.ts';
import { PEFT_TAG, type PeftCase } from './lib/peft-run.ts';
import { runChild } from './lib/child.ts';

const quick = process.argv.includes('--quick');

const child = (script: string, args: string[], tag?: string) => runChild<Record<string, unknown>>(script, args, tag);
const peft = (c: PeftCase) => child(join(import.meta.dir, 'lib/peft-run.ts'), [JSON.stringify(c)], PEFT_TAG);

const smol = await randomModelFolder(join(tmpdir(), 'tuneforge-smollm2-135m-random'), SMOLLM2_135M);
const [B, T] = [1, 256];
const inference = await peft({ kind: 'inference', model: smol, B, T, steps: 0 });
const zoRun = await peft({ kind: 'zo', model: smol, B, T, steps: quick ? 2 : 3 });
const fg = await peft({ kind: 'forward-grad', model: smol, B, T, steps: quick ? 2 : 3 });
const nf4 = await child(join(import.meta.dir, '../plugins/nf4/memory-probe.ts'), ['chunked', '64']);
const lisaRun = await peft({ kind: 'lisa', model: STORIES, B: 8, T: 64, steps: quick ? 200 : 1000 });

const infMb = inference.peak_mb as number;
const steps = lisaRun.per_step as { step: number; peak_rss_mb: number; rss_mb: number; optimizer_mb: number }[];
const afterFirst = steps.find((s) => s.step === 21) ?? steps[0]!; // the first switch is at step 20
const last = steps.at(-1)!;
const figures = {
  inference_peak_mb: Math.round(infMb),
  zo_full_peak_mb: Math.round(zoRun.peak_mb as number),
  zo_full_predicted_mb: Math.round(zoRun.predicted_mb as number),
  forward_grad_peak_mb: Math.round(fg.peak_mb as number),
  forward_grad_predicted_mb: Math.round(fg.predicted_mb as number),
  zo_full_vs_inference: +((zoRun.peak_mb as number) / infMb).toFixed(3),
  forward_grad_vs_inference: +((fg.peak_mb as number) / infMb).toFixed(3),
  nf4_bytes_per_param: +(nf4.bytesPerParam as number).toFixed(3),
  lisa_peak_growth: +(last.peak_rss_mb / afterFirst.peak_rss_mb).toFixed(3),
  lisa_steps: last.step,
};
console.log(`bench:peft-memory (SmolLM2-135M shape at batch ${B} x ${T}; LISA on stories260k, batch 8 x 64)`);
const rows: [string, string][] = [
  ['inference forward pass, peak MB', `${figures.inference_peak_mb}`],
  ['full-parameter ZO-SGD, peak MB (predicted)', `${figures.zo_full_peak_mb} (${figures.zo_full_predicted_mb})`],
  ['  vs inference (target <= 1.1)', `${figures.zo_full_vs_inference}x`],
  ['full-parameter Forward-Grad + SGD, peak MB (predicted)', `${figures.forward_grad_peak_mb} (${figures.forward_grad_predicted_mb})`],
  ['  vs inference (target <= 2.5)', `${figures.forward_grad_vs_inference}x`],
  ['NF4 frozen linear weights, bytes/param (target <= 0.55)', `${figures.nf4_bytes_per_param}`],
  [`LISA ${figures.lisa_steps} steps: peak after last switch / after first`, `${figures.lisa_peak_growth}`],
];
const w = Math.max(...rows.map((r) => r[0].length));
for (const [k, v] of rows) console.log(`  ${k.padEnd(w)}  ${v}`);
console.log('  LISA memory over steps (step: rss MB / peak MB / optimizer MB):');
for (const s of steps.filter((x) => x.step % (quick ? 40 : 100) === 0 || x.step === 21)) {
  console.log(`    ${String(s.step).padStart(5)}: ${s.rss_mb.toFixed(0)} / ${s.peak_rss_mb.toFixed(0)} / ${s.optimizer_mb.toFixed(2)}`);
}
console.log(JSON.stringify(figures));
