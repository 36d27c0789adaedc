/** Evaluation: held-out loss and perplexity, and multiple-choice accuracy by log-likelihood. */
import type { Executable } from '../compile.ts';
import type { TrainConfig } from './config.ts';
import { buildLossGraph, type CompileCache } from './graphs.ts';
import type { RunData, RunModel } from './setup.ts';
import { collate } from '../data/batch.ts';
import type { Example } from '../data/example.ts';
import type { HostTensor } from '../ir/host.ts';
import { shiftLabels } from './batches.ts';
import type { ChoiceItem } from './choice.ts';

/** Compiles (or reuses) the eval graph for a batch shape. */
export type EvalCompiler = (dims: { B: number; T: number }) => Promise<Executable>;

/** Sum of negative log-likelihood and counted tokens for each example, in order. */
export async function scoreExamples(
  examples: readonly Example[], compileFor: EvalCompiler, params: ReadonlyMap<string, HostTensor>, batchSize: number, padId: number, multipleOf: number,
): Promise<{ nll: number[]; count: number[] }> {
  const nll: number[] = [], count: number[] = [];
  // Sorting by length keeps padding (and the number of compiled shapes) small; results go back in order.
  const order = examples.map((_, i) => i).sort((a, b) => examples[a]!.inputIds.length - examples[b]!.inputIds.length);
  for (let i = 0; i < order.length; i += batchSize) {
    const idx = order.slice(i, i + batchSize);
    const batch = collate(examples, idx, { padId, padTo: 'longest', multipleOf });
    const [B, T] = batch.inputIds.shape as [number, number];
    const exe = await compileFor({ B, T });
    const feeds: Record<string, HostTensor> = { input_ids: batch.inputIds, labels: shiftLabels(batch.labels) };
    for (const input of exe.inputs) if (!(input.name in feeds)) feeds[input.name] = params.get(input.name)!;
    const out = await exe.run(feeds);
    const rowNll = out.row_nll!.data as Float32Array, rowCount = out.row_count!.data as Float32Array;
    idx.forEach((exampleIndex, row) => {
      nll[exampleIndex] = rowNll[row]!;
      count[exampleIndex] = rowCount[row]!;
    });
  }
  return { nll, count };
}

/** Mean loss per counted token and its perplexity. */
export async function evalLoss(
  examples: readonly Example[], compileFor: EvalCompiler, params: ReadonlyMap<string, HostTensor>, batchSize: number, padId: number, multipleOf: number,
): Promise<{ eval_loss: number; eval_ppl: number; eval_tokens: number }> {
  const { nll, count } = await scoreExamples(examples, compileFor, params, batchSize, padId, multipleOf);
  const tokens = count.reduce((a, b) => a + b, 0);
  const loss = nll.reduce((a, b) => a + b, 0) / Math.max(tokens, 1);
  return { eval_loss: loss, eval_ppl: Math.exp(loss), eval_tokens: tokens };
}

/** Accuracy: the predicted choice is the one with the highest total log-likelihood of its answer tokens. */
export async function choiceAccuracy(
  items: readonly ChoiceItem[], compileFor: EvalCompiler, params: ReadonlyMap<string, HostTensor>, batchSize: number, padId: number, multipleOf: number,
): Promise<{ accuracy: number; correct: number; total: number }> {
  const flat = items.flatMap((it) => it.options);
  const { nll } = await scoreExamples(flat, compileFor, params, batchSize, padId, multipleOf);
  let correct = 0, offset = 0;
  for (const it of items) {
    const scores = it.options.map((_, c) => -nll[offset + c]!);
    offset += it.options.length;
    if (scores.indexOf(Math.max(...scores)) === it.label) correct++;
  }
  return { accuracy: correct / items.length, correct, total: items.length };
}

/** Every evaluation the run's config asks for (eval loss / perplexity, choice accuracy), then `eval:after`. */
export async function evaluateRun(cfg: TrainConfig, m: RunModel, data: RunData, cache: CompileCache): Promise<Record<string, number>> {
  const padId = m.tok.padId ?? 0;
  const compileFor: EvalCompiler = (dims) =>
    cache.get(`eval|${dims.B}x${dims.T}`, () => buildLossGraph(m.driver, { ...m.ctx, phase: 'eval' }, m.ctx.model.config), dims);
  const out: Record<string, number> = {};
  const { batchSize, maxExamples } = cfg.eval;
  const multiple = cfg.train.padMultiple;
  // eval_*: the held-out set the run reports; val_*: the split held out of the training data, for model selection.
  const sets = [
    { prefix: 'eval', examples: data.evalExamples, items: data.choiceEval },
    { prefix: 'val', examples: data.validation, items: data.choiceValidation },
  ];
  for (const { prefix, examples, items } of sets) {
    if (examples.length) {
      const r = await evalLoss(examples.slice(0, maxExamples), compileFor, m.params, batchSize, padId, multiple);
      Object.assign(out, { [`${prefix}_loss`]: r.eval_loss, [`${prefix}_ppl`]: r.eval_ppl, [`${prefix}_tokens`]: r.eval_tokens });
    }
    if (items.length) out[`${prefix}_accuracy`] = (await choiceAccuracy(items, compileFor, m.params, batchSize, padId, multiple)).accuracy;
  }
  if (Object.keys(out).length) await m.driver.sequential('eval:after', m.ctx, out);
  return out;
}

/** The metrics {@link evaluateRun} reports for this data (to check a config's metric names before training). */
export function evaluationMetrics(data: RunData): string[] {
  const names: string[] = [];
  if (data.evalExamples.length) names.push('eval_loss', 'eval_ppl', 'eval_tokens');
  if (data.choiceEval.length) names.push('eval_accuracy');
  if (data.validation.length) names.push('val_loss', 'val_ppl', 'val_tokens');
  if (data.choiceValidation.length) names.push('val_accuracy');
  return names;
}
