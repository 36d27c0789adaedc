/** Everything a run needs before its first step: model, tokenizer, data, plugins, parameters, trainable set. */
import type { Example } from '../data/example.ts';
import { prepareDataset } from '../data/prepare.ts';
import { heldOutIndices, splitDataset } from '../data/split.ts';
import { mixSeed } from '../data/rng.ts';
import type { Graph, Var } from '../ir/graph.ts';
import { sizeOf, type HostTensor } from '../ir/host.ts';
import { openModel } from '../models/load.ts';
import { paramSpecs } from '../models/params.ts';
import type { PluginContext } from '../plugin/context.ts';
import { PluginDriver } from '../plugin/driver.ts';
import type { BaseWeights, Plugin } from '../plugin/hooks.ts';
import { loadTokenizer, type Tokenizer } from '../tokenizer/index.ts';
import { choiceTrainingExamples, loadChoiceItems, type ChoiceItem } from './choice.ts';
import type { TrainConfig } from './config.ts';
import { mergedExportProblems } from './finish.ts';
import { buildLossGraphWithBoundaries, DATA_INPUTS } from './graphs.ts';
import { PRECISION, settleWeightPrecision, trainedHalfWeights, withPrecision, type HalfWeightsApi } from './precision.ts';

export interface RunData {
  train: Example[];
  evalExamples: Example[];
  choiceEval: ChoiceItem[];
  /** Held out of the training data (data.validationFraction), for model selection: val_loss / val_ppl. */
  validation: Example[];
  /** The same for a choice task: val_accuracy. */
  choiceValidation: ChoiceItem[];
}

/** Salt of the validation split's seed, so it never picks what an evalFraction split with the same seed picks. */
const VALIDATION_SALT = 0x56414c;

/** The parts of a config that data preparation reads (all the data-preparation child process is sent). */
export type RunDataConfig = Pick<TrainConfig, 'data' | 'task' | 'seed'>;

export async function loadRunData(cfg: RunDataConfig, tok: Tokenizer, log: (m: string) => void, maxPositions = Infinity): Promise<RunData> {
  if (cfg.data.maxLength > maxPositions) {
    log(`data.maxLength ${cfg.data.maxLength} is beyond the model's ${maxPositions} positions: using ${maxPositions}`);
    cfg = { ...cfg, data: { ...cfg.data, maxLength: maxPositions } };
  }
  const choice = cfg.task.choice;
  const validationFraction = cfg.data.validationFraction;
  const validationSplit = { evalFraction: validationFraction, seed: mixSeed(cfg.seed, VALIDATION_SALT) };
  if (choice) {
    // Validation items are scored like eval items, so every choice of theirs is encoded; the rest only the answer.
    let held: Set<number> | undefined;
    const isHeld = (i: number, n: number) => validationFraction > 0 && (held ??= heldOutIndices(n, validationSplit)).has(i);
    const items = await loadChoiceItems(choice.trainFile, tok, choice, cfg.data.maxLength, { only: 'label', fullFor: isHeld, log });
    const choiceValidation = items.filter((_, i) => isHeld(i, items.length));
    const train = choiceTrainingExamples(items.filter((_, i) => !isHeld(i, items.length)));
    const choiceEval = choice.evalFile ? await loadChoiceItems(choice.evalFile, tok, choice, cfg.data.maxLength, { limit: choice.evalLimit }) : [];
    const val = choiceValidation.length ? `, ${choiceValidation.length} validation records (held out of the training file)` : '';
    log(`task: ${train.length} training records${val}, ${choiceEval.length} eval records, choices ${JSON.stringify(choice.choices)}`);
    return { train, evalExamples: [], choiceEval, validation: [], choiceValidation };
  }
  if (!cfg.data.train) throw new Error('config: data.train is required (or task.choice for a classification task)');
  const { train: _t, eval: evalFiles, evalFraction, validationFraction: _v, ...dataOptions } = cfg.data;
  const prepared = await prepareDataset(cfg.data.train, tok, dataOptions, log);
  for (const w of prepared.warnings.slice(0, 5)) log(`data warning: ${JSON.stringify(w)}`);
  let train = prepared.examples;
  let evalExamples: Example[] = [];
  let validation: Example[] = [];
  if (evalFiles) evalExamples = (await prepareDataset(evalFiles, tok, dataOptions)).examples;
  else if (evalFraction > 0) ({ train, eval: evalExamples } = splitDataset(train, { evalFraction, seed: cfg.seed }));
  if (validationFraction > 0) ({ train, eval: validation } = splitDataset(train, validationSplit));
  if (train.length === 0) throw new Error(`no training examples in ${cfg.data.train}`);
  log(`data: ${train.length} training examples, ${validation.length ? `${validation.length} validation examples, ` : ''}${evalExamples.length} eval examples`);
  return { train, evalExamples, choiceEval: [], validation, choiceValidation: [] };
}

export interface RunModel {
  dir: string;
  tok: Tokenizer;
  driver: PluginDriver;
  ctx: PluginContext;
  forward: Graph;
  /** Block outputs of `forward`, where activation checkpointing cuts. */
  boundaries: Var[];
  /**
   * Every parameter (base weights and plugin parameters) by name, except base weights a plugin replaced with other
   * graph inputs (see `params:init`): those are never loaded.
   */
  params: Map<string, HostTensor>;
  baseNames: ReadonlySet<string>;
  /** Graph inputs that plugins feed per step (not parameters). */
  feedNames: string[];
}

/**
 * Opens the model, validates the plugins, traces the training graph, reads the base weights the graph takes and
 * initialises plugin parameters. Base weights a plugin replaced with other graph inputs (quantised storage) are
 * read only by that plugin's `params:init`, one at a time, and never kept in float32. With `precision.weights` in
 * half precision, frozen base weights are read in that format (core/train/precision.ts).
 */
export async function setupModel(cfg: TrainConfig, plugins: readonly Plugin[], totalSteps: () => number, log: (m: string) => void): Promise<RunModel> {
  const driver = new PluginDriver(withPrecision(cfg, plugins));
  const model = await openModel(cfg.model);
  try {
    const { dir, config } = model;
    const tok = await loadTokenizer(dir);
    const specs = paramSpecs(config);
    const ctx: PluginContext = {
      model: { config, specs },
      run: { dir: cfg.output, seed: cfg.seed, get totalSteps() { return totalSteps(); } },
      tokenizer: tok,
      phase: 'train',
      log,
      plugin: <Api>(name: string) => driver.api<Api>(name),
    };
    await driver.validate(ctx, mergedExportProblems(cfg, driver.plugins));
    settleWeightPrecision(driver, ctx);
    const { graph: forward, boundaries } = buildLossGraphWithBoundaries(driver, ctx, config);
    const baseNames = new Set(specs.map((s) => s.name));
    const inputs = new Set(forward.inputs.map((i) => i.name));
    const params = new Map<string, HostTensor>();
    const half = driver.api<HalfWeightsApi>(PRECISION);
    for (const s of specs) {
      if (!inputs.has(s.name)) continue;
      // Half-precision storage is read in its format (a float32 checkpoint rounded as it is read), never as float32.
      params.set(s.name, half?.isStored(s.name) ? half.toInput(await model.read(s.name, half.format)) : await model.read(s.name));
    }
    const replaced = specs.filter((s) => !inputs.has(s.name));
    if (replaced.length) {
      const bytes = replaced.reduce((sum, s) => sum + 4 * sizeOf(s.shape), 0);
      log(`${replaced.length} base weights replaced by plugins are converted as they are read, never held in float32 (${(bytes / 2 ** 20).toFixed(1)} MiB)`);
    }
    const base: BaseWeights = {
      has: (name) => baseNames.has(name),
      read: async (name) => {
        const p = params.get(name);
        return p === undefined ? model.read(name) : half?.isStored(name) ? half.widenHost(p) : p;
      },
    };
    const pending = forward.inputs
      .filter((i) => !baseNames.has(i.name) && !(DATA_INPUTS as readonly string[]).includes(i.name))
      .map((i) => ({ name: i.name, shape: i.v.shape as number[] }));
    for (const { plugin, value } of await driver.collect('params:init', ctx, pending, base)) {
      for (const [name, t] of value) {
        if (params.has(name)) throw new Error(`plugin '${plugin}' initialises '${name}', which already has a value`);
        params.set(name, t);
      }
    }
    const feedNames = pending.filter((p) => !params.has(p.name)).map((p) => p.name);
    return { dir, tok, driver, ctx, forward, boundaries, params, baseNames, feedNames };
  } finally {
    await model.close();
  }
}

/** The trainable set from the plugins, checked against the graph; sorted in graph-input order. */
export function trainableSet(m: RunModel): string[] {
  const chosen = m.driver.waterfallSync('params:trainable', m.ctx, new Set<string>());
  const inputs = m.forward.inputs.map((i) => i.name);
  const unknown = [...chosen].filter((n) => !inputs.includes(n));
  if (unknown.length) throw new Error(`plugins asked to train parameters the model does not have: ${unknown.slice(0, 5).join(', ')}`);
  const half = trainedHalfWeights(m.driver, chosen);
  if (half.length) {
    throw new Error(
      `plugins asked to train ${half.slice(0, 3).join(', ')}${half.length > 3 ? ` and ${half.length - 3} more` : ''}, stored in half precision ` +
        `(precision.weights): base weights trained from the start are kept float32, but a trainable set that changes during ` +
        `the run cannot reach frozen half-precision weights; use precision.weights 'float32'`,
    );
  }
  if (chosen.size === 0) throw new Error('nothing to train: add a technique to plugins, e.g. fullFinetune() or lora({ r: 8 })');
  return inputs.filter((n) => chosen.has(n));
}
