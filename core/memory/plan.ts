/**
 * The memory planner: predicts a training run's peak resident memory from its config alone, before any weight is
 * loaded. The model is traced with every plugin's hooks (shapes only), the step graph is built exactly as the
 * trainer will build it, and its execution is simulated (liveness.ts) at the worst-case batch shape.
 */
import { checkpointPlan } from '../autodiff/checkpoint.ts';
import { valueAndGrad } from '../autodiff/vjp.ts';
import { resolveModel } from '../hub/index.ts';
import { byteSize } from '../ir/dtype.ts';
import type { Graph, Var } from '../ir/graph.ts';
import { specialize } from '../ir/specialize.ts';
import { eliminateDeadCode } from '../ir/transform.ts';
import { loadConfig } from '../models/load.ts';
import { expertTensorBytes } from '../models/moe.ts';
import { paramSpecs } from '../models/params.ts';
import type { PluginContext } from '../plugin/context.ts';
import { PluginDriver } from '../plugin/driver.ts';
import type { Plugin } from '../plugin/hooks.ts';
import type { EstimatorMemory } from '../plugin/estimator.ts';
import type { TrainConfig } from '../train/config.ts';
import { mergedExportProblems } from '../train/finish.ts';
import { buildLossGraphWithBoundaries, DATA_INPUTS } from '../train/graphs.ts';
import { buildLossGraph } from '../train/graphs.ts';
import { settleWeightPrecision, withPrecision } from '../train/precision.ts';
import { RUNTIME_BASE, SESSION_BYTES_PER_EQN, SESSION_REPEAT_FRACTION } from './constants.ts';
import { mmapThresholdFor } from './allocator.ts';
import type { DataProfile } from './data-profile.ts';
import { foldedConstantBytes } from './folded-constants.ts';
import { simulateLiveness } from './liveness.ts';

export interface PlanItem {
  component: string;
  bytes: number;
  note?: string;
}

export interface MemoryPlan {
  model: string;
  parameters: number;
  trainableParameters: number;
  /** Micro-batch shape the step graph is planned at (the worst case: longest sequences). */
  dims: { B: number; T: number };
  /** Whether the shapes come from the tokenised data (else every sequence is assumed data.maxLength long). */
  fromData: boolean;
  microBatchSize: number;
  accumulationSteps: number;
  checkpointing: boolean;
  /**
   * glibc's mmap threshold the run must use for this plan to hold (memory.mmapThreshold, lowered below a
   * mixture-of-experts model's per-expert tensors; allocator.ts), or false where the config leaves glibc adaptive.
   */
  mmapThreshold: number | false;
  items: PlanItem[];
  totalBytes: number;
  /** The usual estimates, for comparison. */
  ruleOfThumb: PlanItem[];
}

export interface PlanOverrides {
  microBatchSize?: number;
  checkpointing?: boolean;
  seqLen?: number;
}

function numel(shape: readonly (number | string)[]): number {
  return shape.reduce<number>((a, d) => a * Number(d), 1);
}

/** Bytes of a value of a concrete graph. */
function valueBytes(v: Var): number {
  return byteSize(v.dtype) * numel(v.shape);
}

/**
 * A run's peak as the host sees it: the simulated peak inside the runtime, or the end of the run, when every output
 * exists twice: in the runtime and as the copy onnxruntime-node hands to JavaScript (the runtime frees its own only
 * after all are copied).
 */
function runPeak(g: Graph): { peak: number; outputs: number } {
  const live = simulateLiveness(g);
  return { peak: Math.max(live.peakBytes, 2 * live.outputBytes), outputs: live.outputBytes };
}

/**
 * Peak of the step's graphs and what the sessions keep. `activations` is the step's peak beyond the gradients it
 * returns, which the plan counts as an item of their own (the arrays the trainer holds until the update): the peak
 * is `gradients + activations`.
 */
function stepPeak(forward: Graph, boundaries: Parameters<typeof checkpointPlan>[1], trainable: string[], dims: Record<string, number>, checkpointing: boolean, estimator?: EstimatorMemory) {
  const concrete = (g: Graph) => eliminateDeadCode(specialize(g, dims));
  if (estimator) {
    const graphs = estimator.graphs(forward, trainable).map(concrete);
    return {
      activations: Math.max(...graphs.map((g) => simulateLiveness(g).peakBytes)),
      constants: graphs.reduce((s, g) => s + foldedConstantBytes(g), 0),
      eqns: graphs.reduce((s, g) => s + g.eqns.length, 0),
    };
  }
  const gradBytes = forward.inputs.filter((i) => trainable.includes(i.name)).reduce((s, i) => s + valueBytes(i.v), 0);
  if (!checkpointing) {
    // One run: its peak, or its end, when the gradients exist in the runtime and as the copies handed back.
    const g = concrete(valueAndGrad(forward, { of: 'loss', wrt: trainable }));
    return { activations: Math.max(0, runPeak(g).peak - gradBytes), constants: foldedConstantBytes(g), eqns: g.eqns.length };
  }
  // Checkpointed (train/checkpointed.ts): the forward run, then one run per stage, last segment first. The host holds
  // the crossing values still to be read, the cotangents produced for stages still to run, and the gradients of the
  // stages run so far; each run's outputs are copied to JavaScript at its end (a parameter that several stages
  // differentiate, like tied embeddings, is copied again before it is added into the first copy).
  const plan = checkpointPlan(forward, boundaries, trainable);
  const fwd = concrete(plan.forward);
  const actBytes = new Map(fwd.outputs.filter((o) => o.name.startsWith('act:')).map((o) => [Number(o.name.slice(4)), valueBytes(o.v)]));
  const paramBytes = new Map(fwd.inputs.map((i) => [i.name, valueBytes(i.v)]));
  const consumedAt = new Map<number, number>(); // cotangent id -> the last stage that reads it
  plan.stages.forEach((stage, k) => { for (const id of stage.cotangents) consumedAt.set(id, k); });
  let peak = runPeak(fwd).peak;
  let constants = foldedConstantBytes(fwd), eqns = fwd.eqns.length;
  let grads = 0;
  const produced = new Set<string>();
  const pending = new Map<number, number>(); // cotangents waiting for a later stage -> bytes
  plan.stages.forEach((stage, k) => {
    const g = concrete(stage.graph);
    let held = 0; // read by this stage or a later one, or by none (those stay until the step ends)
    for (const [id, bytes] of actBytes) if ((plan.lastReader.get(id) ?? Infinity) >= k) held += bytes;
    const waiting = [...pending.values()].reduce((s, b) => s + b, 0);
    peak = Math.max(peak, grads + runPeak(g).peak + held + waiting);
    for (const id of stage.cotangents) if (consumedAt.get(id) === k) pending.delete(id);
    for (const id of stage.actGrads) if (!pending.has(id)) pending.set(id, actBytes.get(id) ?? 0);
    for (const p of stage.params) {
      if (!produced.has(p)) grads += paramBytes.get(p) ?? 0;
      produced.add(p);
    }
    constants += foldedConstantBytes(g);
    eqns += g.eqns.length;
  });
  return { activations: Math.max(0, peak - gradBytes), constants, eqns };
}

/** The evaluation's sessions (one per batch shape) and the forward pass's peak at its largest shape. */
function evalPeak(graph: Graph, shapes: readonly { B: number; T: number }[]): { sessions: number; activations: number; shapes: number } {
  let sessions = 0, activations = 0;
  for (const [k, dims] of shapes.entries()) {
    const g = eliminateDeadCode(specialize(graph, dims));
    sessions += (k === 0 ? 1 : SESSION_REPEAT_FRACTION) * (foldedConstantBytes(g) + SESSION_BYTES_PER_EQN * g.eqns.length);
    activations = Math.max(activations, simulateLiveness(g).peakBytes);
  }
  return { sessions, activations, shapes: shapes.length };
}

export interface Planner {
  /** The plan for the run as configured, or with some settings overridden. */
  plan(over?: PlanOverrides): MemoryPlan;
}

/** Predicts the peak memory of a run. Reads only config.json (and the data config), never the weights. */
export async function planMemory(cfg: TrainConfig, plugins: readonly Plugin[], over: PlanOverrides = {}): Promise<MemoryPlan> {
  return (await createPlanner(cfg, plugins)).plan(over);
}

export interface PlannerOptions {
  /** The run's tokenised data (profileRunData): plans the real sequence lengths, shapes and evaluation. */
  data?: DataProfile;
}

/** Traces the model once; each `plan()` then simulates one setting (micro-batch, checkpointing, sequence length). */
export async function createPlanner(cfg: TrainConfig, plugins: readonly Plugin[], opts: PlannerOptions = {}): Promise<Planner> {
  const dir = await resolveModel(cfg.model, { files: ['config.json'] });
  const config = await loadConfig(dir);
  const specs = paramSpecs(config);
  // precision.weights: the same plugin the trainer adds (core/train/precision.ts), so the plan sees its inputs.
  const driver = new PluginDriver(withPrecision(cfg, plugins));
  const ctx: PluginContext = {
    model: { config, specs }, run: { dir: cfg.output, seed: cfg.seed, totalSteps: cfg.train.steps ?? 1 }, phase: 'train',
    log: () => {}, plugin: <Api>(name: string) => driver.api<Api>(name),
  };
  await driver.validate(ctx, mergedExportProblems(cfg, driver.plugins));
  settleWeightPrecision(driver, ctx);
  const { graph: forward, boundaries } = buildLossGraphWithBoundaries(driver, ctx, config);
  const dataInputs = DATA_INPUTS as readonly string[];
  // Parameters have fixed shapes; inputs shaped by the batch (dropout masks, per-step feeds) are part of the step.
  const paramInputs = forward.inputs.filter((i) => !dataInputs.includes(i.name) && i.v.shape.every((d) => typeof d === 'number'));
  const trainableNames = driver.waterfallSync('params:trainable', ctx, new Set<string>());
  const trainable = forward.inputs.map((i) => i.name).filter((n) => trainableNames.has(n));
  if (trainable.length === 0) throw new Error('nothing to train: add a technique to plugins, e.g. fullFinetune() or lora({ r: 8 })');
  const parameters = paramInputs.reduce((s, i) => s + numel(i.v.shape), 0);
  const trainableParameters = paramInputs.filter((i) => trainableNames.has(i.name)).reduce((s, i) => s + numel(i.v.shape), 0);

  const estimator = (await driver.first('step:estimator', ctx))?.value.memory;
  const pluginItems: PlanItem[] = [];
  for (const { plugin, value } of await driver.collect('memory:plan', ctx)) {
    for (const item of value) pluginItems.push({ ...item, component: `${item.component} [${plugin}]` });
  }
  const data = opts.data;
  const evaluation = data?.evalShapes.length ? evalPeak(buildLossGraph(driver, { ...ctx, phase: 'eval' }, config), data.evalShapes) : undefined;
  const plan = (over: PlanOverrides = {}): MemoryPlan => {
  const micro = over.microBatchSize ?? cfg.train.microBatchSize ?? cfg.train.batchSize;
  const accumulationSteps = Math.ceil(cfg.train.batchSize / micro);
  const T = Math.min(over.seqLen ?? data?.trainT ?? cfg.data.maxLength, config.maxPositions);
  const B = micro;
  const moe = config.family.moe;
  const configuredThreshold = cfg.memory.mmapThreshold;
  const mmapThreshold = configuredThreshold === false ? false : mmapThresholdFor(configuredThreshold, moe ? expertTensorBytes(moe, config.hidden, B * T) : undefined);
  const checkpointing = over.checkpointing ?? cfg.memory.checkpointing;
  const step = stepPeak(forward, boundaries, trainable, { B, T }, checkpointing && !estimator, estimator);
  // Each distinct batch shape is a session of its own, kept for the run (CompileCache).
  const trainShapes = data ? Math.max(1, Math.round(data.trainShapes)) : 1;
  const sessionBytes = step.constants + SESSION_BYTES_PER_EQN * step.eqns;

  const keepsGradients = estimator?.gradients ?? true;
  const optimizerBytes = !keepsGradients ? 0 : cfg.train.optimizer === 'adamw' ? 8 * trainableParameters : cfg.train.momentum > 0 ? 4 * trainableParameters : 0;
  const extra = (estimator?.extraBytesPerTrainableParam ?? 0) * trainableParameters;
  const items: PlanItem[] = [
    { component: 'runtime (Bun, onnxruntime, libraries, trainer)', bytes: RUNTIME_BASE },
    { component: 'weights (float32)', bytes: 4 * parameters, note: `${parameters.toLocaleString('en-US')} parameters` },
    ...(keepsGradients ? [{ component: 'gradients', bytes: 4 * trainableParameters, note: `${trainableParameters.toLocaleString('en-US')} trainable` }] : []),
    ...(extra > 0 ? [{ component: 'estimator state', bytes: extra, note: estimator?.extraNote }] : []),
    ...(accumulationSteps > 1 && keepsGradients ? [{ component: 'gradient accumulation buffers', bytes: 4 * trainableParameters, note: `${accumulationSteps} micro-batches` }] : []),
    ...(keepsGradients ? [{ component: `optimizer state (${cfg.train.optimizer})`, bytes: optimizerBytes }] : []),
    evaluation && evaluation.activations > step.activations
      ? { component: 'activations (evaluation)', bytes: evaluation.activations, note: `the eval forward pass at its largest batch, above the step's ${(step.activations / 2 ** 20).toFixed(1)} MiB` }
      : { component: estimator ? 'activations (estimator graphs)' : checkpointing ? 'activations (checkpointed)' : 'activations and temporaries', bytes: step.activations, note: `peak of the step at B=${B}, T=${T}${estimator ? '' : ', beyond the gradients'}` },
    {
      component: 'compiled sessions', bytes: (1 + SESSION_REPEAT_FRACTION * (trainShapes - 1)) * sessionBytes,
      note: `${step.eqns.toLocaleString('en-US')} equations, ${(step.constants / 2 ** 20).toFixed(0)} MiB folded constants${data ? `, x ${trainShapes} batch shapes` : ''}`,
    },
    ...(evaluation ? [{ component: 'evaluation sessions', bytes: evaluation.sessions, note: `${evaluation.shapes} batch shapes of the eval graph` }] : []),
    { component: 'batch', bytes: 2 * 8 * B * T },
    ...(data ? [{ component: 'dataset (tokenised)', bytes: data.datasetBytes, note: `${data.examples.toLocaleString('en-US')} examples` }] : []),
  ];
  items.push(...pluginItems);
  const totalBytes = items.reduce((s, i) => s + i.bytes, 0);
  const frozen = parameters - trainableParameters;
  const ruleOfThumb: PlanItem[] = [
    { component: 'full fine-tuning, AdamW, mixed precision', bytes: 16 * parameters, note: '16 bytes per parameter' },
    { component: 'LoRA', bytes: 2 * frozen + 16 * trainableParameters, note: '2P + 16 P_lora' },
    { component: 'QLoRA', bytes: 0.5 * frozen + 16 * trainableParameters, note: '0.5P (+ 16 P_lora)' },
  ];
  return { model: cfg.model, parameters, trainableParameters, dims: { B, T }, fromData: data !== undefined, microBatchSize: micro, accumulationSteps, checkpointing, mmapThreshold, items, totalBytes, ruleOfThumb };
  };
  return { plan };
}
