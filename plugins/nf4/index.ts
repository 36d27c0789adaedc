/**
 * QLoRA's 4-bit NormalFloat base (Dettmers et al. 2023, "QLoRA: Efficient Finetuning of Quantized LLMs"): the frozen
 * linear weights are stored as NF4 codes (two per byte) with block-wise absmax scales, themselves double-quantised
 * to 8 bits, and dequantised inside the compiled graph right before each product. LoRA trains on top in float32:
 *
 * ```ts
 * plugins: [nf4(), lora({ r: 64, alpha: 16, targets: 'all-linear' })]
 * ```
 *
 * Hooks: `model:param` (a quantised weight enters the graph as its packed inputs), `model:linear` (the product as
 * one `nf4_matmul` whose backward pass dequantises again), `params:init` (reads each float32 weight, quantises it and
 * drops it: the trainer never loads them, see core/plugin/README.md), `export:base` (dequantised weights, so `export:merge`
 * of LoRA merges into what was trained against), `memory:plan`, `train:start`.
 *
 * The plugin is `enforce: 'post'`: its `model:linear` must be the innermost wrapper (LoRA and other adapters wrap
 * it), because for a quantised weight it computes the product itself instead of calling `next`.
 */
import { hostTensor, linearWeightMatcher, op, type GraphBuilder, type HostTensor, type MemoryItem, type ParamSpec, type Plugin, type Tensor } from '../../core/index.ts';
import { nf4Schema, type Nf4Config, type Nf4Options } from './config.ts';
import { nf4Dequantize, nf4Matmul, quantInputTypes, type Nf4Params } from './dequantize.ts';
import { dequantizeNf4, nf4Bytes, nf4Layout, quantizeNf4, type Nf4Tensor } from './quantize.ts';

export const NF4 = 'tuneforge:nf4';

/**
 * The QLoRA paper's recipe for the parts outside this plugin: LoRA on every linear layer with r 64 and alpha 16,
 * learning rate 2e-4 and gradient clipping at norm 0.3. `plugins: [nf4(), lora(QLORA_DEFAULTS.lora)]`,
 * `train: { ...QLORA_DEFAULTS.train }`.
 */
export const QLORA_DEFAULTS: { lora: { r: number; alpha: number; targets: string }; train: { lr: number; maxGradNorm: number } } = {
  lora: { r: 64, alpha: 16, targets: 'all-linear' },
  train: { lr: 2e-4, maxGradNorm: 0.3 },
};

export interface Nf4Api {
  readonly config: Nf4Config;
  /** The quantised weights by Hugging Face name, filled by `params:init` (the arrays the trainer feeds). */
  readonly quantized: ReadonlyMap<string, Nf4Tensor>;
  /** Graph input names holding one quantised weight, in the primitive's order. */
  inputNames(weight: string): string[];
  /** The packed graph inputs of one quantised weight, by input name. */
  packed(weight: string): Map<string, HostTensor>;
  /** The float32 weight the codes stand for (bit-identical to the in-graph dequantisation). */
  dequantize(weight: string): HostTensor;
  /** Whether a base weight of this model is stored in 4 bits. */
  isQuantized(spec: Pick<ParamSpec, 'name' | 'kind'>): boolean;
}


const mib = (b: number) => `${(b / 2 ** 20).toFixed(1)} MiB`;

/**
 * The compiled sessions' share of a quantised product that the planner does not see. The planner charges its
 * per-equation session cost (SESSION_BYTES_PER_EQN, fitted on graphs of ~1.4 ONNX nodes per equation) once per
 * `nf4_matmul`, but the primitive lowers to ~21 ONNX nodes (the dequantisation chain, dequantize.ts) where a plain
 * linear layer lowers to about one: SmolLM2-135M with LoRA r 8 on q,v lowers 5,076 equations to 6,910 nodes, with an
 * NF4 base the same 5,076 equations to 15,274 (417 nf4_matmul: 20.1 extra nodes each; checkpointed 9,787 -> 22,051,
 * 627 products: 19.6; stories260k 1,185 -> 2,554, 67 products: 20.4). Compiling those sessions alone keeps 99 MB
 * instead of LoRA's 62 (checkpointed 133 instead of 83; stories260k 40 instead of 36) after a full GC and
 * malloc_trim: 3.0-4.4 KB per extra node.
 */
const EXTRA_NODES_PER_PRODUCT = 20;
const SESSION_BYTES_PER_EXTRA_NODE = 4 * 1024;

export function nf4(options: Nf4Options = {}): Plugin<Nf4Api> {
  const config = nf4Schema.parse(options);
  const dq = config.doubleQuant ? config.doubleQuantBlockSize : 0;
  const isQuantized = linearWeightMatcher(config.targets, (d) => `nf4: targets is not a valid regular expression ${d}`);
  const paramsFor = (shape: readonly number[]): Nf4Params => ({ shape: [...shape], blockSize: config.blockSize, dq });
  /** Dequantised weight tensors of the graphs being traced -> their quantised inputs (read by `model:linear`). */
  const traced = new WeakMap<Tensor, { qs: Tensor[]; p: Nf4Params }>();
  /** Every weight `model:param` quantised, with its shape. */
  const weights = new Map<string, readonly number[]>();
  const store = new Map<string, Nf4Tensor>();

  const suffixes = quantInputTypes(paramsFor([1, config.blockSize])).map((t) => t.suffix); // names depend on dq only
  const inputNames = (weight: string) => suffixes.map((sfx) => `${weight}.${sfx}`);
  const packed = (weight: string): Map<string, HostTensor> => {
    const q = store.get(weight);
    if (!q) throw new Error(`nf4: '${weight}' has not been quantised (params:init has not run, or it is not a target)`);
    const names = inputNames(weight);
    const l = q.layout;
    const values: HostTensor[] = q.absmaxQ
      ? [
          hostTensor('uint8', [l.codeBytes], q.codes),
          hostTensor('int8', [l.absmaxCodes], q.absmaxQ),
          hostTensor('float32', [l.dqBlocks], q.absmaxScale!),
          hostTensor('float32', [1], Float32Array.of(q.absmaxOffset!)),
        ]
      : [hostTensor('uint8', [l.codeBytes], q.codes), hostTensor('float32', [l.blocks], q.absmax!)];
    return new Map(names.map((n, i) => [n, values[i]!]));
  };
  const dequantize = (weight: string): HostTensor => {
    const q = store.get(weight);
    if (!q) throw new Error(`nf4: '${weight}' has not been quantised`);
    return hostTensor('float32', q.shape, dequantizeNf4(q));
  };

  /** Storage of the quantised weights of a model: real bytes, and what the planner counts (4 per input element). */
  const storage = (specs: readonly ParamSpec[]) => {
    let weights = 0, params = 0, bytes = 0, counted = 0, largest = 0;
    for (const s of specs) {
      if (!isQuantized(s)) continue;
      const n = s.shape.reduce((a, b) => a * b, 1);
      const l = nf4Layout(n, config.blockSize, dq);
      weights++;
      params += n;
      bytes += nf4Bytes(l);
      counted += 4 * quantInputTypes(paramsFor(s.shape)).reduce((sum, t) => sum + (t.shape as number[]).reduce((a, b) => a * b, 1), 0);
      largest = Math.max(largest, n);
    }
    return { weights, params, bytes, counted, largest };
  };

  return {
    name: NF4,
    enforce: 'post',
    options: config,
    api: { config, quantized: store, inputNames, packed, dequantize, isQuantized },

    'config:validate'(ctx) {
      const problems: string[] = [];
      if (!ctx.model.specs.some(isQuantized)) {
        const modules = [...new Set(ctx.model.specs.filter((s) => s.kind === 'linear').map((s) => s.name.replace(/\.weight$/, '').replace(/^.*\./, '')))];
        problems.push(`targets ${JSON.stringify(config.targets)} match no linear weight of this model; its modules are ${modules.join(', ')}`);
      }
      return problems;
    },

    'model:param'(ctx, g: GraphBuilder, name, shape, next) {
      const spec = ctx.model.specs.find((s) => s.name === name);
      if (!spec || !isQuantized(spec) || shape.length !== 2) return next(g, name, shape);
      weights.set(name, shape);
      const p = paramsFor(shape);
      const qs = quantInputTypes(p).map((t) => g.input(`${name}.${t.suffix}`, t.dtype, t.shape));
      const w = nf4Dequantize(qs, p); // [out, in]; unused (and removed) where model:linear takes the fused path
      traced.set(w, { qs, p });
      return w;
    },

    'model:linear'(_ctx, site, x, weight, bias, next) {
      const q = traced.get(weight);
      if (!q || !config.recomputeBackward) return next(site, x, weight, bias);
      const y = nf4Matmul(x, q.qs, q.p, true);
      return bias ? op.add(y, bias) : y;
    },

    async 'params:init'(_ctx, pending, base) {
      const wanted = new Set(pending.map((p) => p.name));
      const values = new Map<string, HostTensor>();
      for (const [weight, shape] of weights) {
        const names = inputNames(weight);
        if (!names.some((n) => wanted.has(n))) continue;
        if (!base?.has(weight)) throw new Error(`nf4: no base weight '${weight}' to quantise (params:init needs the base weights)`);
        // One float32 weight at a time: read, quantise, drop.
        const w = await base.read(weight);
        if (w.dtype !== 'float32' || w.shape.join() !== shape.join()) throw new Error(`nf4: '${weight}' is ${w.dtype}[${w.shape}], expected float32[${shape}]`);
        store.set(weight, quantizeNf4(w.data as Float32Array, w.shape, { blockSize: config.blockSize, dqBlockSize: dq }));
        for (const [n, t] of packed(weight)) if (wanted.has(n)) values.set(n, t);
      }
      return values;
    },

    'export:base'(_ctx, base) {
      const out = new Map(base);
      for (const weight of store.keys()) out.set(weight, dequantize(weight));
      return out;
    },

    'memory:plan'(ctx) {
      const s = storage(ctx.model.specs);
      if (s.params === 0) return;
      const items: MemoryItem[] = [
        {
          component: 'NF4 storage of the frozen linear weights',
          bytes: s.bytes - s.counted,
          note: `${s.params.toLocaleString('en-US')} weights in ${mib(s.bytes)} (${(s.bytes / s.params).toFixed(3)} B each) instead of ${mib(4 * s.params)} float32; corrects the 4 B per element counted for the packed inputs`,
        },
        {
          // Inside one primitive, invisible to the liveness simulation: indices (int32, int64 in the backward
          // pass: up to 4 B per weight), code pairs (4 B) and the scaled weight (4 B), one layer at a time.
          component: 'NF4 dequantisation temporaries',
          bytes: 8 * s.largest,
          note: `largest quantised layer (${s.largest.toLocaleString('en-US')} weights), one at a time${config.recomputeBackward ? '; the weight is re-dequantised in the backward pass, not kept' : ''}`,
        },
      ];
      // recomputeBackward: one nf4_matmul in the forward pass and one in the backward pass per weight (activation
      // checkpointing traces the forward pass again in each stage, a third, which this hook cannot see); otherwise one
      // nf4_dequantize per weight, whose result the ordinary products share.
      const products = (config.recomputeBackward ? 2 : 1) * s.weights;
      items.push({
        component: 'NF4 dequantisation nodes in the compiled sessions',
        bytes: products * EXTRA_NODES_PER_PRODUCT * SESSION_BYTES_PER_EXTRA_NODE,
        note: `~${(products * EXTRA_NODES_PER_PRODUCT).toLocaleString('en-US')} ONNX nodes (${EXTRA_NODES_PER_PRODUCT} per ${config.recomputeBackward ? 'nf4_matmul, forward and backward' : 'nf4_dequantize'}) that the planner's per-equation session cost does not count`,
      });
      return items;
    },

    'train:start'(ctx) {
      const s = storage(ctx.model.specs);
      ctx.log(`${store.size} weights in NF4 (block ${config.blockSize}${dq ? `, double quantisation ${dq}` : ''}): ${mib(s.bytes)} instead of ${mib(4 * s.params)} float32 (${(s.bytes / s.params).toFixed(3)} B per weight)`);
      if (config.pagedOptimizer) {
        ctx.log('paged optimizer: nothing to do on the CPU runner: the optimizer state already lives in host memory, which is where this runner computes (there is no device memory to page it out of)');
      }
    },
  };
}

export { nf4Schema, type Nf4Options, type Nf4Config };
export { NF4_CODE, quantizeNf4, dequantizeNf4, nf4Layout, nf4Bytes, type Nf4Tensor, type Nf4Layout } from './quantize.ts';
export { nf4Dequantize, nf4Matmul, nf4DequantizePrim, nf4MatmulPrim, type Nf4Params } from './dequantize.ts';
