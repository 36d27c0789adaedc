/**
 * Half-precision frozen weights (`precision.weights: 'float16' | 'bfloat16'`): each frozen base weight is held in two
 * bytes per parameter and widened to float32 inside the graph right before use (core/ops/widen.ts); trainable
 * tensors, gradients and optimizer state stay float32, so the arithmetic is that of the float32 model on the
 * weights rounded to half precision.
 *
 * It is a plugin the run adds to its own list (`withPrecision`), so every graph built from the run's plugins (the
 * training step, evaluation, generation, the planner's) takes the same inputs:
 * - `model:param`: a frozen base weight enters as a float16 input (bfloat16: uint16 bit patterns, since
 *   onnxruntime-node has no bfloat16 tensors) under its own name, followed by `widen`; the op API turns products and
 *   embedding lookups of it into `widened_matmul` and a gather of the stored rows, so no float32 copy of a weight
 *   outlives the product that reads it.
 * - the trainer reads those weights in the storage format (`OpenedModel.read(name, format)`): an F16 or BF16
 *   checkpoint in its own format is never widened; a float32 one is rounded as it is read, 4 MiB of float32 at a time
 *   (core/io/safetensors-read.ts), so no float32 copy of a weight, let alone of the model, is ever whole.
 * - `export:base`: the stored weights widened back (exactly), so a merged export holds what was trained against.
 * - `memory:plan`: 2 bytes per stored parameter instead of the planner's 4; the widened temporaries are ONNX nodes
 *   of the step graphs, which the liveness simulation sees.
 *
 * Base weights a plugin trains are kept float32 (`settleWeightPrecision`, before the model is traced): full
 * fine-tuning then stores only what it leaves frozen (with `exclude`, say, the embeddings). LISA is refused: it
 * trains every decoder layer in turn, each would need its float32 values from its first window on (a half-precision
 * copy cannot hold the updates), and by the end the whole model would be float32 again.
 */
import type { DType } from '../ir/dtype.ts';
import { sizeOf, type HostTensor } from '../ir/host.ts';
import { bf16ToF32, f16ToF32 } from '../io/half.ts';
import { widen, type HalfFormat } from '../ops/widen.ts';
import type { PluginContext } from '../plugin/context.ts';
import type { PluginDriver } from '../plugin/driver.ts';
import type { Plugin } from '../plugin/hooks.ts';
import type { TrainConfig } from './config.ts';

export const PRECISION = 'tuneforge:precision';
const LISA = 'tuneforge:lisa';

export interface HalfWeightsApi {
  readonly format: HalfFormat;
  /** The dtype a stored weight is fed as: float16, or uint16 holding bfloat16 bit patterns. */
  readonly inputDtype: DType;
  /** Keeps these base weights in float32 (they are trained); call before the model is traced. */
  keepFloat32(names: Iterable<string>): void;
  /** Whether a traced graph takes this base weight in half precision. */
  isStored(name: string): boolean;
  /** A weight read in `format` (`OpenedModel.read(name, format)`) as the tensor the graph is fed. */
  toInput(t: HostTensor): HostTensor;
  /** The float32 values of a stored weight (exact: every half-precision value is a float32 value). */
  widenHost(t: HostTensor): HostTensor;
  /** Stored weights and their parameter count, kept weights, for logs and plans. */
  summary(): { weights: number; matrices: number; params: number; kept: number };
}

const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(1)} MiB`;

/**
 * The session cost the planner's per-equation figure (SESSION_BYTES_PER_EQN, about 1.4 ONNX nodes per equation)
 * misses: each `widened_matmul` lowers to the product's nodes plus the widening's (float16: 1 forward, 3 backward;
 * bfloat16 bits: 4 either way), and compiled sessions keep ~4 KiB per node (plugins/nf4/index.ts measured 3.0-4.4).
 */
const SESSION_BYTES_PER_EXTRA_NODE = 4 * 1024;

export function halfWeights(format: HalfFormat): Plugin<HalfWeightsApi> {
  // onnxruntime-node takes float16 tensors but not bfloat16 ones: bfloat16 travels as its bit patterns.
  const inputDtype: DType = format === 'float16' ? 'float16' : 'uint16';
  const kept = new Set<string>();
  /** Base weights a traced graph takes in half precision, with their shapes. */
  const stored = new Map<string, readonly number[]>();
  let baseNames = new Set<string>();

  const widenHost = (t: HostTensor): HostTensor => {
    if (t.dtype === 'float32') return t;
    if (t.dtype !== inputDtype && t.dtype !== format) throw new Error(`${PRECISION}: expected a ${format} weight, got ${t.dtype}`);
    const bits = t.data as Uint16Array;
    return { dtype: 'float32', shape: [...t.shape], data: format === 'float16' ? f16ToF32(bits) : bf16ToF32(bits) };
  };
  const summary = () => {
    const shapes = [...stored.values()];
    return { weights: stored.size, matrices: shapes.filter((s) => s.length === 2).length, params: shapes.reduce((a, s) => a + sizeOf(s), 0), kept: kept.size };
  };

  const api: HalfWeightsApi = {
    format,
    inputDtype,
    keepFloat32: (names) => { for (const n of names) kept.add(n); },
    isStored: (name) => stored.has(name),
    toInput: (t) => {
      if (t.dtype !== format) throw new Error(`${PRECISION}: expected a ${format} weight, got ${t.dtype}`);
      return t.dtype === inputDtype ? t : { dtype: inputDtype, shape: t.shape, data: t.data };
    },
    widenHost,
    summary,
  };

  return {
    name: PRECISION,
    // Innermost (after other 'post' plugins such as NF4, which replace some weights outright and call `next` for
    // the rest), so it stores whatever base weight still arrives as a plain input.
    enforce: 'post',
    options: { weights: format },
    api,

    'config:validate'(ctx) {
      baseNames = new Set(ctx.model.specs.map((s) => s.name));
      if (ctx.plugin(LISA) === undefined) return [];
      return [
        `precision.weights '${format}' cannot be combined with LISA: LISA trains every decoder layer in turn, and a layer ` +
          `needs float32 values from its first window on (a half-precision copy cannot hold its updates), so by the end ` +
          `the whole model would be float32 again; use precision.weights 'float32' with LISA, whose saving is the ` +
          `optimizer state of the layers it leaves frozen`,
      ];
    },

    'model:param'(_ctx, g, name, shape, next) {
      if (!baseNames.has(name) || kept.has(name)) return next(g, name, shape);
      stored.set(name, [...shape]);
      return widen(g.input(name, inputDtype, shape), format); // [...shape] float32
    },

    'export:base'(_ctx, weights) {
      const out = new Map(weights);
      for (const [name, t] of weights) if (stored.has(name)) out.set(name, widenHost(t));
      return out;
    },

    'memory:plan'() {
      const s = summary();
      if (s.params === 0) return;
      const extraNodesPerProduct = format === 'float16' ? 2 : 4; // forward and backward averaged (see above)
      const products = 2 * s.matrices; // the forward product and the backward one of each matrix
      return [
        {
          component: `${format} storage of the frozen base weights`,
          bytes: -2 * s.params,
          note: `${s.params.toLocaleString('en-US')} parameters of ${s.weights} weights in ${mib(2 * s.params)} instead of ${mib(4 * s.params)} float32; corrects the 4 B per parameter the weights line counts${s.kept ? ` (${s.kept} trained weights kept float32)` : ''}`,
        },
        {
          component: `${format} widening nodes in the compiled sessions`,
          bytes: products * extraNodesPerProduct * SESSION_BYTES_PER_EXTRA_NODE,
          note: `~${(products * extraNodesPerProduct).toLocaleString('en-US')} ONNX nodes that the per-equation session cost does not count`,
        },
      ];
    },

    'train:start'(ctx) {
      const s = summary();
      if (s.weights === 0) {
        ctx.log(`precision.weights '${format}': every base weight is trained, so all stay float32 and nothing is stored in ${format}`);
        return;
      }
      ctx.log(`${s.weights} frozen base weights in ${format}: ${mib(2 * s.params)} instead of ${mib(4 * s.params)} float32${s.kept ? `; ${s.kept} trained base weights kept float32` : ''}`);
    },
  };
}

/** The run's plugins with the precision plugin added when `precision.weights` asks for half precision. */
export function withPrecision(cfg: Pick<TrainConfig, 'precision'>, plugins: readonly Plugin[]): readonly Plugin[] {
  const weights = cfg.precision?.weights ?? 'float32';
  if (weights === 'float32' || plugins.some((p) => p.name === PRECISION)) return plugins;
  return [...plugins, halfWeights(weights)];
}

/**
 * Keeps the base weights the plugins train in float32. Before the model is traced, so the graph takes them as float32
 * inputs; `params:trainable` names base weights from the config alone (full fine-tuning), never from the trace.
 */
export function settleWeightPrecision(driver: PluginDriver, ctx: PluginContext): void {
  const half = driver.api<HalfWeightsApi>(PRECISION);
  if (!half) return;
  const trainable = driver.waterfallSync('params:trainable', ctx, new Set<string>());
  half.keepFloat32(ctx.model.specs.map((s) => s.name).filter((n) => trainable.has(n)));
}

/** Trainable names that are base weights stored in half precision: trained, they would need float32 values. */
export function trainedHalfWeights(driver: PluginDriver, names: Iterable<string>): string[] {
  const half = driver.api<HalfWeightsApi>(PRECISION);
  return half ? [...names].filter((n) => half.isStored(n)) : [];
}
