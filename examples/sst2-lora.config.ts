/**
 * SST-2 with LoRA, the README's first run: stories260k learns to tell positive from negative reviews (prompt
 * "Review: <sentence>\nSentiment:", answers " negative" / " positive", loss on the answer only, batch 16 drawn at
 * random, 600 steps) with rank-8 adapters (alpha 16) on every linear layer instead of the base weights.
 *
 * What makes LoRA learn here is the schedule: a warmup over the first 5% of steps, cosine decay to zero and clipping
 * at norm 1. With examples/sst2.config.ts's constant lr and no clipping, LoRA's dev accuracy swings between 50% and
 * 61% from one evaluation to the next and ends at 54.9% (seed 0, lr 3e-3). The sweep that chose this recipe
 * (`bun run bench:sst2 --methods lora --eval-every 100 --set 'train.schedule=cosine;train.warmupRatio=0.05;train.maxGradNorm=1' [--lora-lr X]`):
 *   lr 3e-3: 69.2%, 67.5%, 65.7% on seeds 0, 1, 2 (mean 67.5%)
 *   lr 5e-3: 63.5% on seed 0
 *
 * 1% of the training records (673) are held out as a validation split; it is scored every 100 steps with the dev
 * set, and the checkpoint with the best validation accuracy is the one exported (never chosen on the dev set the
 * result is reported on). The run first scores the untrained model (the baseline: 50.9% on dev, the share of
 * positive reviews, since it answers " positive" to everything) and prints it beside the final figures.
 *
 *   bun run tuneforge train --config examples/sst2-lora.config.ts
 */
import { defineConfig } from '../core/train/config.ts';
import { lora } from '../plugins/lora/index.ts';
import sst2 from './sst2.config.ts';

export default defineConfig({
  ...sst2,
  output: '../runs/sst2-lora',
  data: { ...sst2.data, validationFraction: 0.01 },
  train: { ...sst2.train, lr: 3e-3, schedule: 'cosine', warmupRatio: 0.05, maxGradNorm: 1 },
  eval: {
    ...sst2.eval,
    every: 100,
    samples: ['Review: a gorgeous, witty, seductive movie.\nSentiment:', 'Review: the plot is nothing but boilerplate clichés from start to finish.\nSentiment:'],
    maxNewTokens: 4,
  },
  checkpoint: { best: { metric: 'val_accuracy' } },
  plugins: [lora({ r: 8, alpha: 16, targets: 'all-linear' })],
});
