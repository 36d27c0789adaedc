/**
 * Composition: the plugin trained together with the techniques it should combine with — LoRA (on other layers),
 * an NF4 base and the zeroth-order estimator — a few steps each, with a finite loss. A combination the plugin
 * refuses must be refused with a message (a plugin's `validate`), never crash in the middle of a step.
 */
import { join } from 'node:path';
import type { Plugin } from '../core/index.ts';
import { train } from '../core/train/trainer.ts';
import { lora } from '../plugins/lora/index.ts';
import { nf4 } from '../plugins/nf4/index.ts';
import { zo } from '../plugins/zo/index.ts';
import { KitError } from './errors.ts';
import { kitConfig, kitModel, quietLog, scratchDir, type KitModelOptions } from './run-model.ts';

export type Partner = 'lora' | 'nf4' | 'zo';

export interface CompositionCheckOptions extends KitModelOptions {
  plugins: () => Plugin[];
  /** Which partners to try (default all three). */
  with?: readonly Partner[];
  /** LoRA's targets, away from the plugin's own layers (default the MLP's gate/up/down projections). */
  loraTargets?: string[];
  steps?: number;
}

export interface CompositionResult {
  partner: Partner;
  /** 'trained': ran with finite losses; 'refused': validation said why before training (the message). */
  outcome: 'trained' | 'refused';
  losses: number[];
  message?: string;
}

const PARTNERS: Record<Partner, (o: CompositionCheckOptions) => Plugin> = {
  lora: (o) => lora({ r: 2, alpha: 4, targets: o.loraTargets ?? ['gate_proj', 'up_proj', 'down_proj'] }),
  nf4: () => nf4({ blockSize: 16 }),
  zo: () => zo({}),
};

export async function checkComposition(o: CompositionCheckOptions): Promise<CompositionResult[]> {
  const model = await kitModel(o);
  const out: CompositionResult[] = [];
  for (const partner of o.with ?? (['lora', 'nf4', 'zo'] as const)) {
    const cfg = kitConfig(model, join(scratchDir(`compose-${partner}`), 'run'), { train: { steps: o.steps ?? 3 } });
    const losses: number[] = [];
    try {
      await train({
        config: cfg, plugins: [...o.plugins(), PARTNERS[partner](o)], progress: { write: () => true, isTTY: false }, log: quietLog,
        onRecord: (r) => { if (typeof r.loss === 'number' && r.final === undefined) losses.push(r.loss); },
      });
    } catch (e) {
      const message = (e as Error).message;
      // Refusals come from validation, before the first step; anything later is a crash of the combination.
      if (losses.length === 0 && /invalid|cannot|refuse|not supported|conflict|incompatible/i.test(message)) {
        out.push({ partner, outcome: 'refused', losses, message });
        continue;
      }
      throw new KitError(`composition with ${partner}: the run failed after ${losses.length} steps: ${message}`);
    }
    if (losses.length === 0 || !losses.every(Number.isFinite)) throw new KitError(`composition with ${partner}: losses ${JSON.stringify(losses)} (expected finite losses every step)`);
    out.push({ partner, outcome: 'trained', losses });
  }
  return out;
}
