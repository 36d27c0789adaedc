/**
 * What a run's data means for its memory, from the tokenised lengths, batched as the trainer and the evaluation
 * will batch them: the longest micro-batch (the step's worst case), how many distinct batch shapes the run compiles
 * (each shape is a session of its own, kept for the whole run), the evaluation's batch shapes, and the tokenised
 * dataset itself. Without a profile the planner assumes every sequence is `data.maxLength` long, which oversizes runs
 * on short data by the ratio of the two (SST-2: 512 planned against ~70 real tokens).
 */
import type { Example } from '../data/example.ts';
import type { RunData } from '../train/setup.ts';

export interface DataProfile {
  /** Longest training sequence, padded as batches are (to a multiple of padMultiple). */
  trainT: number;
  /** Expected number of distinct training micro-batch shapes over the run. */
  trainShapes: number;
  /** The distinct batch shapes the evaluation scores (eval and validation sets). */
  evalShapes: { B: number; T: number }[];
  /** Bytes the tokenised examples hold in the trainer. */
  datasetBytes: number;
  /** Examples of every list (train, eval, validation, every choice option). */
  examples: number;
}

export interface ProfileOptions {
  batchSize: number;
  microBatchSize: number;
  padMultiple: number;
  /** Optimizer steps of the run. */
  steps: number;
  bucketByLength: boolean;
  evalBatchSize: number;
  /** eval.maxExamples: only that many eval-loss examples are scored. */
  evalMaxExamples?: number;
}

/** int32 ids and labels per token, plus the two typed-array views (and their share of the lists) per example. */
const BYTES_PER_TOKEN = 8;
const BYTES_PER_EXAMPLE = 240;

const padded = (n: number, multiple: number) => Math.ceil(Math.max(n, 1) / multiple) * multiple;

/**
 * Expected number of distinct values of the padded longest sequence of a micro-batch of `b` rows, over `draws`
 * micro-batches. Rows are drawn at random, so P(longest ≤ class c) = F(c)^b with F the share of examples up to c;
 * with length bucketing a batch's rows share one length class, so a class appears with the share of its examples.
 */
function expectedShapes(classes: readonly number[], b: number, draws: number, bucketed: boolean): number {
  const counts = new Map<number, number>();
  for (const c of classes) counts.set(c, (counts.get(c) ?? 0) + 1);
  const sorted = [...counts.entries()].sort((x, y) => x[0] - y[0]);
  let below = 0, expected = 0;
  for (const [, n] of sorted) {
    const p = bucketed
      ? n / classes.length
      : Math.pow((below + n) / classes.length, b) - Math.pow(below / classes.length, b);
    below += n;
    expected += 1 - Math.pow(1 - p, draws);
  }
  return expected;
}

/** The batch shapes scoring builds for a list: sorted by length, chunks of batchSize (evaluate.ts's scoreExamples). */
function scoringShapes(examples: readonly Example[], batchSize: number, multiple: number): string[] {
  const lengths = examples.map((e) => e.inputIds.length).sort((a, b) => a - b);
  const shapes: string[] = [];
  for (let i = 0; i < lengths.length; i += batchSize) {
    const chunk = lengths.slice(i, i + batchSize);
    shapes.push(`${chunk.length}x${padded(chunk.at(-1)!, multiple)}`);
  }
  return shapes;
}

export function profileRunData(data: RunData, o: ProfileOptions): DataProfile {
  const classes = data.train.map((e) => padded(e.inputIds.length, o.padMultiple));
  const micro = Math.min(o.microBatchSize, o.batchSize);
  const full = Math.floor(o.batchSize / micro), rest = o.batchSize % micro;
  let trainShapes = expectedShapes(classes, micro, o.steps * full, o.bucketByLength);
  if (rest > 0) trainShapes += expectedShapes(classes, rest, o.steps, o.bucketByLength); // the smaller last micro-batch
  const scored = [
    data.evalExamples.slice(0, o.evalMaxExamples), data.choiceEval.flatMap((c) => c.options),
    data.validation.slice(0, o.evalMaxExamples), data.choiceValidation.flatMap((c) => c.options),
  ];
  const evalShapes = [...new Set(scored.flatMap((list) => scoringShapes(list, o.evalBatchSize, o.padMultiple)))].map((s) => {
    const [B, T] = s.split('x').map(Number) as [number, number];
    return { B, T };
  });
  const all = [...data.train, ...data.evalExamples, ...data.validation, ...data.choiceEval.flatMap((c) => c.options), ...data.choiceValidation.flatMap((c) => c.options)];
  const tokens = all.reduce((s, e) => s + e.inputIds.length, 0);
  return {
    trainT: Math.max(...classes),
    trainShapes,
    evalShapes,
    datasetBytes: BYTES_PER_TOKEN * tokens + BYTES_PER_EXAMPLE * all.length,
    examples: all.length,
  };
}
