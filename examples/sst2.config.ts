/**
 * Fine-tune stories260k on SST-2 sentiment: prompt "Review: <sentence>\nSentiment:", answers " negative" / " positive",
 * loss on the answer only, batch 16 drawn at random, 600 steps, accuracy on the 872 dev sentences.
 *
 *   bun run tuneforge train --config examples/sst2.config.ts
 */
import { defineConfig } from '../core/train/config.ts';
import { fullFinetune } from '../plugins/full/index.ts';

export default defineConfig({
  model: '../../shared/models/stories260k',
  output: '../runs/sst2-full',
  seed: 0,
  task: {
    choice: {
      template: 'Review: {text}\nSentiment:',
      choices: [' negative', ' positive'],
      trainFile: '../../shared/data/sst2/train.tsv',
      evalFile: '../../shared/data/sst2/dev.tsv',
    },
  },
  train: { steps: 600, batchSize: 16, sampling: 'random', optimizer: 'adamw', lr: 1e-3, schedule: 'constant', maxGradNorm: null },
  eval: { batchSize: 64 },
  plugins: [fullFinetune()],
});
