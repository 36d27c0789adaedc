/**
 * Learning-rate schedules with linear warmup, as pure functions of the step.
 *
 * The multipliers are exactly those of Hugging Face transformers (`optimization.py`), with `step` counted from 0 as
 * `LambdaLR` does: the lr of the (step+1)-th optimizer update when the scheduler is stepped after each update. So the
 * first update of a run with warmup uses lr 0, as in transformers.
 *
 *   warmup (step < W):  step / max(1, W)
 *   constant:           1                                          get_constant_schedule_with_warmup
 *   linear:             max(0, (T - step) / max(1, T - W))         get_linear_schedule_with_warmup
 *   cosine:             p = (step - W) / max(1, T - W)             get_cosine_schedule_with_warmup (num_cycles 0.5),
 *                       f = 0.5 * (1 + cos(pi * p))                with min_lr_rate as in
 *                       max(0, f * (1 - minLrRatio) + minLrRatio)  get_cosine_with_min_lr_schedule_with_warmup
 *
 * W is `warmupSteps` when > 0, else ceil(T * warmupRatio) (TrainingArguments.get_warmup_steps). Past T the formulas
 * are kept as they are: linear stays at 0, cosine rises again (as in transformers).
 */
import { z } from 'zod';

const lr = z.number().nonnegative().describe('peak learning rate, reached at the end of warmup');
const warmupSteps = z.number().int().nonnegative().default(0).describe('warmup steps; when > 0 it wins over warmupRatio');
const warmupRatio = z.number().min(0).max(1).default(0).describe('warmup as a fraction of the total steps (rounded up)');

export const LrScheduleSchema = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('constant').describe('constant after warmup'), lr, warmupSteps, warmupRatio }),
  z.object({ kind: z.literal('linear').describe('linear decay to 0 at totalSteps'), lr, warmupSteps, warmupRatio }),
  z.object({
    kind: z.literal('cosine').describe('half-cosine decay to minLrRatio * lr at totalSteps'),
    lr,
    warmupSteps,
    warmupRatio,
    minLrRatio: z.number().min(0).max(1).default(0).describe('final lr as a fraction of the peak lr'),
  }),
]);
/** A schedule as written by callers. */
export type LrScheduleInput = z.input<typeof LrScheduleSchema>;
/** A validated schedule with defaults filled in. */
export type LrSchedule = z.infer<typeof LrScheduleSchema>;

function checkSteps(step: number, totalSteps: number): void {
  if (!Number.isInteger(step) || step < 0) throw new Error(`lr schedule: step ${step} is not an integer >= 0`);
  if (!Number.isInteger(totalSteps) || totalSteps < 0) throw new Error(`lr schedule: totalSteps ${totalSteps} is not an integer >= 0`);
}

/** Number of warmup steps of a schedule over `totalSteps`. */
export function warmupStepsOf(totalSteps: number, schedule: LrScheduleInput): number {
  const s = LrScheduleSchema.parse(schedule);
  return s.warmupSteps > 0 ? s.warmupSteps : Math.ceil(totalSteps * s.warmupRatio);
}

/** The lr multiplier (0..1) at `step` (counted from 0) of a run of `totalSteps` updates. */
export function lrMultiplier(step: number, totalSteps: number, schedule: LrScheduleInput): number {
  checkSteps(step, totalSteps);
  const s = LrScheduleSchema.parse(schedule);
  const warmup = s.warmupSteps > 0 ? s.warmupSteps : Math.ceil(totalSteps * s.warmupRatio);
  if (step < warmup) return step / Math.max(1, warmup);
  switch (s.kind) {
    case 'constant':
      return 1;
    case 'linear':
      return Math.max(0, (totalSteps - step) / Math.max(1, totalSteps - warmup));
    case 'cosine': {
      const progress = (step - warmup) / Math.max(1, totalSteps - warmup);
      const factor = 0.5 * (1 + Math.cos(Math.PI * 0.5 * 2 * progress));
      return Math.max(0, factor * (1 - s.minLrRatio) + s.minLrRatio);
    }
  }
}

/** The learning rate at `step` (counted from 0) of a run of `totalSteps` updates: `schedule.lr * lrMultiplier(...)`. */
export function lrAt(step: number, totalSteps: number, schedule: LrScheduleInput): number {
  return schedule.lr * lrMultiplier(step, totalSteps, schedule);
}
