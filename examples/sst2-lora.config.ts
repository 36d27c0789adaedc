/**
 * SST-2 with LoRA: the recipe of examples/sst2.config.ts (stories260k, prompt "Review: <sentence>\nSentiment:",
 * answers " negative" / " positive", loss on the answer only, batch 16 drawn at random, 600 steps, AdamW without
 * weight decay, constant lr, no clipping) with rank-8 adapters (alpha 16) on every linear layer instead of training
 * the base weights. Adapters train far fewer parameters (46,240 here, against 260,032), so they take a larger
 * learning rate than full fine-tuning: on seed 0 (dev accuracy after 600 steps, best along the way in brackets)
 * 1e-3 gave 51.0% (53.1%), 3e-3 54.9% (60.8%), 5e-3 50.9% (58.8%, loss spikes), 1e-2 50.5% (diverged); 3e-3 it is.
 *
 * Everything but the output folder, the learning rate and the plugin comes from examples/sst2.config.ts.
 *
 *   bun run tuneforge train --config examples/sst2-lora.config.ts
 */
import { defineConfig } from '../core/train/config.ts';
import { lora } from '../plugins/lora/index.ts';
import sst2 from './sst2.config.ts';

export default defineConfig({
  ...sst2,
  output: '../runs/sst2-lora',
  train: { ...sst2.train, lr: 3e-3 },
  plugins: [lora({ r: 8, alpha: 16, targets: 'all-linear' })],
});
