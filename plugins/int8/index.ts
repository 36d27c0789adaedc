/**
 * 8-bit frozen weights: the frozen linear weights are stored as int8 codes with one absmax scale per output row (or
 * per block of `blockSize` weights) and dequantised inside the compiled graph right before each product. LoRA
 * trains on top in float32 ("8-bit LoRA", the int8 half of bitsandbytes + PEFT's `load_in_8bit` recipe):
 *
 * ```ts
 * plugins: [int8(), lora({ r: 8, alpha: 16, targets: 'all-linear' })]
 * ```
 *
 * Hooks: `model:param` (a quantised weight enters the graph as its codes and scales), `model:linear` (the product as
 * one `int8_matmul` whose backward pass dequantises again), `params:init` (reads each float32 weight, quantises it
 * and drops it: the trainer never loads them, see core/plugin/README.md), `export:base` (dequantised weights, so
 * LoRA's `export:merge` merges into what was trained against), `memory:plan`, `train:start`.
 *
 * The plugin is `enforce: 'post'`: its `model:linear` must be the innermost wrapper (LoRA and other adapters wrap
 * it), because for a quantised weight it computes the product itself instead of calling `next`.
 */
import { hostTensor, linearWeightMatcher, op, type GraphBuilder, type HostTensor, type MemoryItem, type ParamSpec, type Plugin, type Tensor } from '../../core/index.ts';
import { NF4 } from '../nf4/index.ts';
import { int8Schema, parseInt8Options, type Int8Config, type Int8Options } from './config.ts';
import { int8Dequantize, int8InputTypes, int8Matmul, type Int8Params } from './dequantize.ts';
import { dequantizeInt8, int8Bytes, int8Layout, quantizeInt8, rowBlockSize, type Int8Tensor } from './quantize.ts';

export const INT8 = 'tuneforge:int8';

export interface Int8Api {
  readonly config: Int8Config;
  /** The quantised weights by Hugging Face name, filled by `params:init` (the arrays the trainer feeds). */
  readonly quantized: ReadonlyMap<string, Int8Tensor>;
  /** Graph input names holding one quantised weight: codes, scales. */
  inputNames(weight: string): string[];
  /** The graph inputs of one quantised weight, by input name. */
  packed(weight: string): Map<string, HostTensor>;
  /** The float32 weight the codes stand for (bit-identical to the in-graph dequantisation). */
  dequantize(weight: string): HostTensor;
  /** Whether a base weight of this model is stored in 8 bits. */
  isQuantized(spec: Pick<ParamSpec, 'name' | 'kind'>): boolean;
}


const mib = (b: number) => `${(b / 2 ** 20).toFixed(1)} MiB`;

/**
 * The compiled sessions' share of a quantised product that the planner does not see: it charges its per-equation
 * session cost once per `int8_matmul`, but the primitive lowers to a few more ONNX nodes than a plain linear layer
 * (Cast, Reshapes, Mul; a Cast through int32 in the backward orientation). Counted with `lowerGraph` on
 * stories260k's LoRA step (q, v; B x T = 2 x 16): 1,185 nodes, with an int8 base 1,552 for 67 products (5.5 each);
 * with `recomputeBackward: false` 1,395 for 35 `int8_dequantize` (6.0 each; int8.test.ts checks the first). The
 * bytes per node are NF4's measurement (plugins/nf4/index.ts: 3.0-4.4 KB per extra node).
 */
export const EXTRA_NODES_PER_PRODUCT = 5.5;
const SESSION_BYTES_PER_EXTRA_NODE = 4 * 1024;

export function int8(options: Int8Options = {}): Plugin<Int8Api> {
  const config = parseInt8Options(options);
  const isQuantized = linearWeightMatcher(config.targets, (d) => `int8: invalid options\n  targets: not a valid regular expression ${d}`);
  const paramsFor = (shape: readonly number[]): Int8Params => ({ shape: [...shape], blockSize: config.blockSize ?? rowBlockSize(shape) });
  /** Dequantised weight tensors of the graphs being traced -> their quantised inputs (read by `model:linear`). */
  const traced = new WeakMap<Tensor, { qs: Tensor[]; p: Int8Params }>();
  /** Every weight `model:param` quantised, with its shape. */
  const weights = new Map<string, readonly number[]>();
  const store = new Map<string, Int8Tensor>();

  const inputNames = (weight: string) => int8InputTypes(paramsFor([1, 1])).map((t) => `${weight}.${t.suffix}`);
  const stored = (weight: string): Int8Tensor => {
    const q = store.get(weight);
    if (!q) throw new Error(`int8: '${weight}' has not been quantised (params:init has not run, or it is not a target)`);
    return q;
  };
  const packed = (weight: string): Map<string, HostTensor> => {
    const q = stored(weight);
    const [codes, scales] = inputNames(weight) as [string, string];
    return new Map([
      [codes, hostTensor('int8', [q.layout.paddedNumel], q.codes)],
      [scales, hostTensor('float32', [q.layout.blocks], q.scales)],
    ]);
  };
  const dequantize = (weight: string): HostTensor => {
    const q = stored(weight);
    return hostTensor('float32', q.shape, dequantizeInt8(q));
  };

  /** Storage of the quantised weights of a model: real bytes, and what the planner counts (4 per input element). */
  const storage = (specs: readonly ParamSpec[]) => {
    let weights = 0, params = 0, bytes = 0, counted = 0, largest = 0;
    for (const s of specs) {
      if (!isQuantized(s) || s.shape.length !== 2) continue;
      const n = s.shape[0]! * s.shape[1]!;
      const l = int8Layout(n, paramsFor(s.shape).blockSize);
      weights++;
      params += n;
      bytes += int8Bytes(l);
      counted += 4 * (l.paddedNumel + l.blocks);
      largest = Math.max(largest, n);
    }
    return { weights, params, bytes, counted, largest };
  };

  return {
    name: INT8,
    enforce: 'post',
    // Both replace the same frozen weights; whichever wrapped outermost would silently win.
    conflicts: [NF4],
    options: config,
    api: { config, quantized: store, inputNames, packed, dequantize, isQuantized },

    'config:validate'(ctx) {
      if (ctx.model.specs.some((s) => isQuantized(s) && s.shape.length === 2)) return [];
      const modules = [...new Set(ctx.model.specs.filter((s) => s.kind === 'linear').map((s) => s.name.replace(/\.weight$/, '').replace(/^.*\./, '')))];
      return [`targets ${JSON.stringify(config.targets)} match no linear weight of this model; its modules are ${modules.join(', ')}`];
    },

    'model:param'(ctx, g: GraphBuilder, name, shape, next) {
      const spec = ctx.model.specs.find((s) => s.name === name);
      if (!spec || !isQuantized(spec) || shape.length !== 2) return next(g, name, shape);
      weights.set(name, shape);
      const p = paramsFor(shape);
      const qs = int8InputTypes(p).map((t) => g.input(`${name}.${t.suffix}`, t.dtype, t.shape));
      const w = int8Dequantize(qs, p); // [out, in]; unused (and removed) where model:linear takes the fused path
      traced.set(w, { qs, p });
      return w;
    },

    'model:linear'(_ctx, site, x, weight, bias, next) {
      const q = traced.get(weight);
      if (!q || !config.recomputeBackward) return next(site, x, weight, bias);
      const y = int8Matmul(x, q.qs, q.p, true); // [..., out]
      return bias ? op.add(y, bias) : y;
    },

    async 'params:init'(_ctx, pending, base) {
      const wanted = new Set(pending.map((p) => p.name));
      const values = new Map<string, HostTensor>();
      for (const [weight, shape] of weights) {
        if (!inputNames(weight).some((n) => wanted.has(n))) continue;
        if (!base?.has(weight)) throw new Error(`int8: no base weight '${weight}' to quantise (params:init needs the base weights)`);
        // One float32 weight at a time: read, quantise, drop.
        const w = await base.read(weight);
        if (w.dtype !== 'float32' || w.shape.join() !== shape.join()) throw new Error(`int8: '${weight}' is ${w.dtype}[${w.shape}], expected float32[${shape}]`);
        store.set(weight, quantizeInt8(w.data as Float32Array, w.shape, { blockSize: paramsFor(shape).blockSize }));
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
      const per = config.blockSize ? `${config.blockSize} weights` : 'row';
      // recomputeBackward: one int8_matmul in the forward pass and one in the backward pass per weight; otherwise
      // one int8_dequantize per weight, whose result the ordinary products share.
      const products = (config.recomputeBackward ? 2 : 1) * s.weights;
      const items: MemoryItem[] = [
        {
          component: 'int8 storage of the frozen linear weights',
          bytes: s.bytes - s.counted,
          note: `${s.params.toLocaleString('en-US')} weights in ${mib(s.bytes)} (${(s.bytes / s.params).toFixed(3)} B each: 1 B code + a float32 scale per ${per}) instead of ${mib(4 * s.params)} float32; corrects the 4 B per element counted for the codes and scales`,
        },
        {
          // Inside one primitive, invisible to the liveness simulation: the codes cast to float32 (int32 first in the
          // backward pass) and the scaled weight, one layer at a time.
          component: 'int8 dequantisation temporaries',
          bytes: 8 * s.largest,
          note: `largest quantised layer (${s.largest.toLocaleString('en-US')} weights), one at a time${config.recomputeBackward ? '; the weight is re-dequantised in the backward pass, not kept' : ''}`,
        },
        {
          component: 'int8 dequantisation nodes in the compiled sessions',
          bytes: products * EXTRA_NODES_PER_PRODUCT * SESSION_BYTES_PER_EXTRA_NODE,
          note: `~${Math.round(products * EXTRA_NODES_PER_PRODUCT).toLocaleString('en-US')} ONNX nodes (${EXTRA_NODES_PER_PRODUCT} per ${config.recomputeBackward ? 'int8_matmul, forward and backward' : 'int8_dequantize'}) that the planner's per-equation session cost does not count`,
        },
      ];
      return items;
    },

    'train:start'(ctx) {
      const s = storage(ctx.model.specs);
      ctx.log(`${store.size} weights in int8 (one scale per ${config.blockSize ? `${config.blockSize} weights` : 'row'}): ${mib(s.bytes)} instead of ${mib(4 * s.params)} float32 (${(s.bytes / s.params).toFixed(3)} B per weight)`);
    },
  };
}

export { int8Schema, parseInt8Options, type Int8Options, type Int8Config };
export { quantizeInt8, dequantizeInt8, int8Layout, int8Bytes, rowBlockSize, type Int8Tensor, type Int8Layout } from './quantize.ts';
export { int8Dequantize, int8Matmul, int8DequantizePrim, int8MatmulPrim, int8InputTypes, type Int8Params } from './dequantize.ts';
