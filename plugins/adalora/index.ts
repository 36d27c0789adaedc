/**
 * AdaLoRA (Zhang et al. 2023, "Adaptive Budget Allocation for Parameter-Efficient Fine-Tuning", ICLR): LoRA in SVD
 * form, h = W x + (B ((A ⊙ E) x)) · alpha / (init_r + 1e-5), whose rank budget is reallocated during training: after
 * each optimizer step the singular values E of the least important triplets (by smoothed sensitivity × uncertainty)
 * are zeroed, following a cubic schedule from init_r to target_r per module on average. Computes what Hugging Face
 * PEFT's AdaLoraModel computes, and exports a PEFT adapter folder pruned to the kept ranks.
 *
 * ```ts
 * plugins: [adalora({ initR: 12, targetR: 8, alpha: 32, targets: ['q_proj', 'v_proj'], tinit: 50, tfinal: 100 })]
 * ```
 */
import {
  hostTensor, nn, op, seededRandom,
  type GraphBuilder, type HostTensor, type LinearSite, type Plugin, type PluginContext, type Tensor,
} from '../../core/index.ts';
import { targetMatcher } from '../lora/targets.ts';
import { RankAllocator, type AllocatedModule, type AllocationEvent, type RankPattern } from './allocator.ts';
import { adaloraSchema, type AdaloraConfig, type AdaloraOptions } from './config.ts';
import { mergeAdalora, peftRankPattern, prunedTensors, writeAdaloraAdapter, type PeftAdaloraConfig } from './export.ts';
import { adaloraScaling, dropoutMaskName, loraAName, loraBName, loraEName, moduleOf, orthogonalityPenalty, svdUpdate } from './layer.ts';

export const ADALORA = 'tuneforge:adalora';
/** LoraConfig's `r`, which AdaLoRA ignores; PEFT warns when an AdaLoRA config sets anything else. */
const PEFT_UNUSED_R = 8;

export interface AdaloraApi {
  readonly config: AdaloraConfig;
  /** The adapted modules (name, rank, features), filled in when the model graph is built. */
  readonly adapted: ReadonlyMap<string, AllocatedModule>;
  /** alpha / (init_r + 1e-5), the same for every module. */
  readonly scaling: number;
  /** The rank allocator of the current run (undefined before the first step, and when `rankPattern` fixes the ranks). */
  allocator(): RankAllocator | undefined;
  /** The current rank pattern by module name: the fixed one, the latest allocation's, or null before any masking. */
  rankPattern(): RankPattern | null;
  /** What the latest `step:after` did. */
  lastAllocation(): AllocationEvent | undefined;
  /** W + scaling · B (A ⊙ E) for every adapted module, as new tensors. */
  merge(weights: ReadonlyMap<string, HostTensor>, trained: ReadonlyMap<string, HostTensor>): Map<string, HostTensor>;
}

/** `rankPattern` keyed by module name (PEFT's `<module>.lora_E` keys accepted). */
function normalisePattern(pattern: Record<string, boolean[]> | undefined): RankPattern | undefined {
  if (!pattern) return undefined;
  return Object.fromEntries(Object.entries(pattern).map(([k, v]) => [k.replace(/\.lora_E$/, ''), v]));
}

const nameHash = (name: string) => [...name].reduce((h, c) => (h * 31 + c.charCodeAt(0)) >>> 0, 17);

/** N(0, std²) by Box–Muller from a seeded uniform stream (PEFT: nn.init.normal_(std=0.02)). */
function gaussian(n: number, std: number, random: () => number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = std * Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
  return out;
}

const isHostTensor = (v: unknown): v is HostTensor =>
  typeof v === 'object' && v !== null && 'dtype' in v && 'shape' in v && ArrayBuffer.isView((v as HostTensor).data);

export function adalora(options: AdaloraOptions = {}): Plugin<AdaloraApi> {
  const config = adaloraSchema.parse(options);
  const isTarget = targetMatcher(config.targets);
  const fixed = normalisePattern(config.rankPattern);
  const scaling = adaloraScaling(config.alpha, config.initR);
  const adapted = new Map<string, AllocatedModule>();
  /** A and B of each graph being traced, for the regulariser of that graph's loss. */
  const traced = new WeakMap<GraphBuilder, { a: Tensor; b: Tensor; r: number }[]>();
  let allocator: RankAllocator | undefined;
  let last: AllocationEvent | undefined;
  let warnedNoGrads = false;

  const rankOf = (module: string) => {
    const keep = fixed?.[module];
    return keep ? keep.filter(Boolean).length : config.initR;
  };
  const totalStepOf = (ctx: PluginContext) => config.totalStep ?? ctx.run.totalSteps;
  const scheduleProblem = (T: number): string | undefined => {
    const what = config.totalStep === undefined ? `the run's ${T} steps (totalStep unset)` : `totalStep ${T}`;
    return config.tinit < T - config.tfinal ? undefined
      : `tinit (${config.tinit}) must be less than totalStep − tfinal (${T} − ${config.tfinal}) with ${what}: there would be no budgeting phase; lower tinit or tfinal, or raise totalStep`;
  };

  /** Created on first use, after the model graph was traced (it needs the adapted modules) and T is known. */
  const allocatorFor = (ctx: PluginContext): RankAllocator | undefined => {
    if (fixed) return undefined; // a pruned adapter: the allocation is over
    if (allocator) return allocator;
    const T = totalStepOf(ctx);
    const problem = scheduleProblem(T);
    if (problem) throw new Error(`${ADALORA}: ${problem}`);
    if (adapted.size === 0) throw new Error(`${ADALORA}: no module was adapted (was the model graph built with this plugin?)`);
    allocator = new RankAllocator([...adapted.values()], { ...config, totalStep: T }, config);
    return allocator;
  };

  const currentPattern = (): RankPattern | null => fixed ?? allocator?.rankPattern ?? null;
  const modules = () => [...adapted.values()];
  const merge: AdaloraApi['merge'] = (weights, trained) => mergeAdalora(weights, trained, modules(), scaling);

  return {
    name: ADALORA,
    options: config,
    // Zeroth-order estimators apply their own update and give no per-element gradient: no sensitivity to score.
    conflicts: fixed ? [] : ['tuneforge:zo'],
    api: {
      config, adapted, scaling, merge,
      allocator: () => allocator,
      rankPattern: currentPattern,
      lastAllocation: () => last,
    },

    'config:validate'(ctx) {
      // The first hook of every run: a plugin object reused for another run starts a fresh allocator.
      allocator = undefined;
      last = undefined;
      adapted.clear();
      warnedNoGrads = false;
      const problems: string[] = [];
      const sites = ctx.model.specs.filter((s) => s.kind === 'linear').map((s) => s.name.replace(/\.weight$/, ''));
      const site = (name: string): LinearSite => ({ name, module: name.slice(name.lastIndexOf('.') + 1), layer: 0, inFeatures: 0, outFeatures: 0 });
      const targeted = sites.filter((n) => isTarget(site(n)));
      if (targeted.length === 0) {
        const names = [...new Set(sites.map((n) => n.slice(n.lastIndexOf('.') + 1)))];
        problems.push(`targets ${JSON.stringify(config.targets)} match no linear layer of this model; its modules are ${names.join(', ')}`);
      }
      if (config.targetR > config.initR) problems.push(`targetR (${config.targetR}) must not exceed initR (${config.initR}): ranks are only ever removed`);
      // Without totalStep, T is the run's step count, unknown until the data is loaded: checked when training starts.
      if (config.totalStep !== undefined) {
        const problem = scheduleProblem(config.totalStep);
        if (problem) problems.push(problem);
      }
      for (const [module, keep] of Object.entries(fixed ?? {})) {
        if (!targeted.includes(module)) problems.push(`rankPattern: '${module}' is not one of the adapted modules (full names, e.g. ${targeted[0] ?? 'model.layers.0.self_attn.q_proj'})`);
        if (keep.length !== config.initR) problems.push(`rankPattern: '${module}' has ${keep.length} entries; it needs one per initial rank (initR ${config.initR})`);
        if (!keep.some(Boolean)) problems.push(`rankPattern: '${module}' keeps no rank; a rank-0 module is not supported (leave it out of targets)`);
      }
      return problems;
    },

    'model:linear'(ctx, site, x, weight, bias, next) {
      const base = next(site, x, weight, bias); // [..., out]
      if (!isTarget(site)) return base;
      const r = rankOf(site.name);
      adapted.set(site.name, { name: site.name, r, inFeatures: site.inFeatures, outFeatures: site.outFeatures });
      const g = x.builder;
      const a = g.input(loraAName(site.name), 'float32', [r, site.inFeatures]);
      const e = g.input(loraEName(site.name), 'float32', [r, 1]);
      const b = g.input(loraBName(site.name), 'float32', [site.outFeatures, r]);
      if (!traced.has(g)) traced.set(g, []);
      traced.get(g)!.push({ a, b, r });
      // Inverted dropout on the adapter's input, masks fed per step so runs reproduce exactly.
      const input = config.dropout > 0 && ctx.phase === 'train' ? op.mul(x, g.input(dropoutMaskName(site.name), 'float32', x.shape)) : x;
      return op.add(base, svdUpdate(input, a, e, b, scaling));
    },

    'model:loss'(ctx, loss, g) {
      // Training only (PEFT adds it to outputs.loss in training forward passes); evaluation reports the plain loss.
      const pairs = traced.get(g);
      if (ctx.phase !== 'train' || config.orthRegWeight === 0 || !pairs?.length) return loss;
      return op.add(loss, op.mul(orthogonalityPenalty(pairs), config.orthRegWeight));
    },

    'params:init'(ctx, pending) {
      const values = new Map<string, HostTensor>();
      for (const p of pending) {
        const module = moduleOf(p.name);
        if (module === undefined || !adapted.has(module)) continue;
        if (p.name === loraEName(module)) {
          values.set(p.name, hostTensor('float32', p.shape)); // E = 0: training starts from the base model
          continue;
        }
        const random = seededRandom(ctx.run.seed * 7919 + nameHash(p.name));
        values.set(p.name, hostTensor('float32', p.shape, gaussian(p.shape[0]! * p.shape[1]!, 0.02, random)));
      }
      return values;
    },

    'params:trainable'(_ctx, current) {
      return new Set([...current, ...[...adapted.keys()].flatMap((m) => [loraAName(m), loraEName(m), loraBName(m)])]);
    },

    'step:feeds'(ctx) {
      if (config.dropout === 0) return;
      const feeds: Record<string, HostTensor> = {};
      const keep = 1 - config.dropout;
      for (const m of adapted.values()) {
        const n = ctx.dims.B! * ctx.dims.T! * m.inFeatures;
        const mask = new Float32Array(n);
        for (let i = 0; i < n; i++) mask[i] = ctx.random() < keep ? 1 / keep : 0;
        feeds[dropoutMaskName(m.name)] = hostTensor('float32', [ctx.dims.B!, ctx.dims.T!, m.inFeatures], mask);
      }
      return feeds;
    },

    'train:start'(ctx) {
      const alloc = allocatorFor(ctx); // fails early on a schedule without a budgeting phase
      if (!alloc) {
        ctx.log(`ranks fixed by rankPattern (${modules().reduce((s, m) => s + m.r, 0)} over ${adapted.size} modules): no allocation`);
        return;
      }
      const s = alloc.schedule;
      ctx.log(`budget ${s.initBudget} -> ${s.targetBudget} over ${adapted.size} modules: warm-up to step ${s.tinit}, cubic decrease every ${s.deltaT} step(s), fixed from step ${s.totalStep - s.tfinal} of ${s.totalStep}`);
    },

    /**
     * PEFT's `update_and_allocate(global_step)` after `optimizer.step()`. The step passed is `ctx.step`, the number
     * of optimizer steps done including this one (1 … T), as PEFT's MetaMathQA runner counts; so with tfinal 0 the
     * last step of the run is T − tfinal and ends at the target budget.
     */
    'step:after'(ctx, result) {
      const alloc = allocatorFor(ctx);
      if (!alloc) return;
      if (!result.grads && !warnedNoGrads) {
        warnedNoGrads = true;
        ctx.log(`step ${ctx.step}: no gradients (no loss tokens, or an estimator that updates by itself): sensitivities not updated`);
      }
      const before = last?.budget;
      last = alloc.step(ctx.step, ctx.params, result.grads);
      if (last.phase === 'final') {
        const ranks = Object.values(alloc.rankPattern ?? {}).map((k) => k.filter(Boolean).length);
        ctx.log(`step ${ctx.step}: final allocation, budget ${last.budget}: ranks ${ranks.join(' ')} (modules in name order)`);
      } else if (last.masked && last.budget !== before) {
        ctx.log(`step ${ctx.step}: budget ${last.budget} of ${alloc.schedule.initBudget}`);
      }
    },

    'state:save'(ctx) {
      const alloc = allocatorFor(ctx);
      if (!alloc) return; // fixed ranks: nothing evolves besides the parameters
      const s = alloc.state();
      return {
        version: 1,
        totalStep: alloc.schedule.totalStep,
        ipt: hostTensor('float32', [s.ipt.length], s.ipt), // top level: stored in the checkpoint's tensor file
        unc: hostTensor('float32', [s.unc.length], s.unc),
        rankPattern: s.rankPattern,
        last: last ?? null,
      };
    },

    'state:load'(ctx, saved) {
      const alloc = allocatorFor(ctx);
      if (!alloc) return;
      if (saved.version !== 1) throw new Error(`${ADALORA}: checkpoint state version ${String(saved.version)} is not supported`);
      if (saved.totalStep !== alloc.schedule.totalStep) {
        throw new Error(`${ADALORA}: the checkpoint's schedule has totalStep ${String(saved.totalStep)} but this run's is ${alloc.schedule.totalStep}; resume with the same options and steps`);
      }
      if (!isHostTensor(saved.ipt) || !isHostTensor(saved.unc)) throw new Error(`${ADALORA}: checkpoint state lacks the sensitivity tensors`);
      alloc.restore({
        ipt: saved.ipt.data as Float32Array,
        unc: saved.unc.data as Float32Array,
        rankPattern: (saved.rankPattern as RankPattern | null) ?? null,
      });
      last = (saved.last as AllocationEvent | null) ?? undefined;
    },

    'export:merge'(_ctx, weights, trained) {
      return merge(weights, trained);
    },

    async 'export:artifacts'(ctx, dir, trained) {
      const pattern = currentPattern();
      const names = modules().map((m) => m.name);
      const short = [...new Set(modules().map((m) => m.name.slice(m.name.lastIndexOf('.') + 1)))];
      // target_modules must select exactly the adapted modules: a regular expression as given, short names when the
      // targets were short names or all-linear, else the full module names (e.g. an adapter loaded from PEFT).
      const targetModules = typeof config.targets === 'string' && config.targets !== 'all-linear' ? config.targets
        : config.targets === 'all-linear' || config.targets.every((t) => !t.includes('.')) ? short : names;
      const peft: PeftAdaloraConfig = {
        peft_type: 'ADALORA', task_type: 'CAUSAL_LM', r: PEFT_UNUSED_R, init_r: config.initR, target_r: config.targetR,
        lora_alpha: config.alpha, lora_dropout: config.dropout, target_modules: targetModules, bias: 'none', fan_in_fan_out: false,
        tinit: config.tinit, tfinal: config.tfinal, deltaT: config.deltaT, beta1: config.beta1, beta2: config.beta2,
        orth_reg_weight: config.orthRegWeight, total_step: totalStepOf(ctx), rank_pattern: peftRankPattern(pattern),
        base_model_name_or_path: (ctx.model.config.raw._name_or_path as string | undefined) ?? null, inference_mode: true,
      };
      return writeAdaloraAdapter(`${dir}/adapter`, peft, prunedTensors(trained, modules(), pattern));
    },

    'memory:plan'() {
      // A, E, B, their gradients and AdamW moments are trainable graph inputs: the planner counts them already.
      if (fixed || adapted.size === 0) return;
      const elements = modules().reduce((s, m) => s + m.r * (m.inFeatures + 1 + m.outFeatures), 0);
      return [{
        component: 'AdaLoRA sensitivity EMAs',
        bytes: 2 * 4 * elements,
        note: `I and U (float32) for ${elements.toLocaleString('en-US')} adapter values; parameters, gradients and optimizer state are counted above`,
      }];
    },
  };
}

export { adaloraSchema, type AdaloraOptions, type AdaloraConfig };
export { budgetSchedule, RankAllocator, type AllocatedModule, type AllocationEvent, type RankPattern, type Schedule } from './allocator.ts';
export { adaloraScaling, loraAName, loraBName, loraEName } from './layer.ts';
export { mergeAdalora, prunedTensors, writeAdaloraAdapter, type PeftAdaloraConfig } from './export.ts';
