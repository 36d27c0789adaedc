/**
 * SST-2 with LoRA: the recipe of examples/sst2.config.ts (stories260k, prompt "Review: <sentence>\nSentiment:",
 * answers " negative" / " positive", loss on the answer only, batch 16 drawn at random, 600 steps, AdamW without
 * weight decay, constant lr, no clipping) with rank-8 adapters (alpha 16) on every linear layer instead of training
 * the base weights. Adapters train far fewer parameters (46,240 here, against 260,032), so they take a larger
 * learning rate than full fine-tuning: on seed 0 (dev accuracy after 600 steps, best along the way in brackets)
 * 1e-3 gave 51.0% (53.1%), 3e-3 54.9% (60.8%), 5e-3 50.9% (58.8%, loss spikes), 1e-2 50.5% (diverged); 3e-3 it is.
 *
 *   bun run tuneforge train --config examples/sst2-lora.config.ts
 */
import { defineConfig } from '../core/train/config.ts';
import { lora } from '../plugins/lora/index.ts';

export default defineConfig({
  model: '../../shared/models/stories260k',
  output: '../runs/sst2-lora',
  seed: 0,
  task: {
    choice: {
      template: 'Review: {text}\nSentiment:',
      choices: [' negative', ' positive'],
      trainFile: '../../shared/data/sst2/train.tsv',
      evalFile: '../../shared/data/sst2/dev.tsv',
    },
  },
  train: { steps: 600, batchSize: 16, sampling: 'random', optimizer: 'adamw', lr: 3e-3, schedule: 'constant', maxGradNorm: null },
  eval: { batchSize: 64 },
  plugins: [lora({ r: 8, alpha: 16, targets: 'all-linear' })],
});
