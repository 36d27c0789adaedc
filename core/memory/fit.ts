/**
 * Fitting a run to a memory budget: the largest micro-batch that fits (gradient accumulation keeps the effective
 * batch), then activation checkpointing if even one sequence per micro-batch does not fit; otherwise a refusal that
 * shows the breakdown and the smallest changes that would fit.
 */
import type { MemoryPlan, Planner } from './plan.ts';
import { formatPlan } from './format.ts';

const UNITS: Record<string, number> = { b: 1, kb: 1e3, mb: 1e6, gb: 1e9, kib: 2 ** 10, mib: 2 ** 20, gib: 2 ** 30 };

/** "4GB", "512 MiB" or a number of MiB, in bytes. */
export function parseBudget(budget: number | string): number {
  if (typeof budget === 'number') return budget * 2 ** 20;
  const m = /^(\d+(?:\.\d+)?)\s*([a-z]+)$/i.exec(budget.trim());
  const unit = m && UNITS[m[2]!.toLowerCase()];
  if (!m || !unit) throw new Error(`memory.budget: cannot read ${JSON.stringify(budget)}; write e.g. "4GB" or "512MiB"`);
  return Number(m[1]) * unit;
}

export class BudgetError extends Error {
  constructor(message: string, readonly smallest: MemoryPlan) {
    super(message);
    this.name = 'BudgetError';
  }
}

function microSizes(batch: number): number[] {
  const sizes: number[] = [];
  for (let m = batch; m >= 1; m = m === 1 ? 0 : Math.ceil(m / 2)) sizes.push(m);
  return sizes;
}

/** The first setting that fits, in order of preference; throws BudgetError when none does. */
export function fitToBudget(planner: Planner, batchSize: number, budgetBytes: number): MemoryPlan {
  const sizes = microSizes(batchSize);
  for (const checkpointing of [false, true]) {
    for (const microBatchSize of sizes) {
      const p = planner.plan({ microBatchSize, checkpointing });
      if (p.totalBytes <= budgetBytes) return p;
    }
  }
  const smallest = planner.plan({ microBatchSize: 1, checkpointing: true });
  const mib = (b: number) => `${(b / 2 ** 20).toFixed(0)} MiB`;
  const changes = [`raise memory.budget to at least ${mib(smallest.totalBytes)}`];
  // The longest sequence length that would fit at micro-batch 1 with checkpointing, if any.
  let lo = 0, hi = smallest.dims.T;
  while (hi - lo > 8) {
    const mid = Math.floor((lo + hi) / 2);
    if (planner.plan({ microBatchSize: 1, checkpointing: true, seqLen: mid }).totalBytes <= budgetBytes) lo = mid;
    else hi = mid;
  }
  if (lo >= 16) changes.push(`or shorten data.maxLength to ${lo} tokens`);
  if (smallest.trainableParameters > 0.5 * smallest.parameters) changes.push('or train fewer parameters (e.g. LoRA instead of full fine-tuning)');
  throw new BudgetError(
    `the run does not fit in memory.budget = ${mib(budgetBytes)}, even with micro-batch 1 and activation checkpointing:\n` +
      `${formatPlan(smallest)}\nsmallest changes that would fit: ${changes.join('; ')}`,
    smallest,
  );
}
