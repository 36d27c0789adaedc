/**
 * Public API of the kernel. Plugins and user code import from here only.
 *
 * ```ts
 * import { trace, op, nn, valueAndGrad, compile } from 'tuneforge/core';
 * const g = trace((g) => {
 *   const x = g.input('x', 'float32', ['B', 4]);
 *   const w = g.input('w', 'float32', [2, 4]);
 *   return { loss: op.mean(op.square(nn.linear(x, w))) };
 * });
 * const step = await compile(valueAndGrad(g, { of: 'loss', wrt: ['w'] }), { dims: { B: 8 } });
 * ```
 */
export * as op from './ops/api.ts';
export * as nn from './nn/index.ts';
export { trace, GraphBuilder, Tensor, GraphError } from './ir/graph.ts';
export type { Graph, Var, Eqn, TensorType, NamedVar } from './ir/graph.ts';
export type { DType, TypedArray } from './ir/dtype.ts';
export { DTYPES, isFloat, byteSize } from './ir/dtype.ts';
export type { Dim, Shape } from './ir/shape.ts';
export { hostTensor, sizeOf, type HostTensor } from './ir/host.ts';
export { definePrimitive, type Primitive, type LowerCtx, type Cost } from './ir/primitive.ts';
export { checkGraph, assertGraph } from './ir/check.ts';
export { printGraph } from './ir/print.ts';
export { specialize } from './ir/specialize.ts';
export { eliminateDeadCode } from './ir/transform.ts';
export { valueAndGrad, gradName, type GradOptions } from './autodiff/vjp.ts';
export { jvp, tangentName } from './autodiff/jvp.ts';
export { compile, type CompileOptions, type Executable } from './compile.ts';
/** Runners: onnxruntime-node (CPU, WebGPU), onnxruntime-web (wasm, WebGPU); see docs/runners.md. */
export * from '../runners/index.ts';
export { graphCost, type GraphCost } from './cost.ts';
export { lowerGraph, OPSET } from './onnx/lower.ts';
export { encodeModel } from './onnx/model.ts';
export { parseConfig, SUPPORTED_ARCHITECTURES, SMOLLM2_135M, TINYLLAMA_1_1B, type ModelConfig, type RawConfig } from './models/config.ts';
export { paramSpecs, parameterCount, randomWeights, type ParamSpec } from './models/params.ts';
export { realConfig, REAL_CONFIGS, type RealConfigName, type RealConfigOptions } from './models/configs/index.ts';
export { buildCausalLM, causalLMLoss, type AttentionInputs, type CausalLMGraph, type CausalLMOptions, type LinearSite, type ModelHooks, type TokenEmbeddings } from './models/llama.ts';
export { loadModel, loadConfig, openModel, type LoadedModel, type OpenedModel } from './models/load.ts';
export { openCheckpoint, openSafetensors, readAll, writeSafetensors, encodeSafetensors } from './io/safetensors.ts';
export { resolveModel, HubError } from './hub/index.ts';
export { loadTokenizer } from './tokenizer/index.ts';
export * from './plugin/index.ts';
export * from './optim/index.ts';
export { seededRandom, argmax } from './generate/sampling.ts';
export { lineChartSvg, barChartSvg, type LineSeries, type BarSeries } from './report/index.ts';
/** Runs: a typed config, the trainer, the planner (what `tuneforge train` and `tuneforge plan` use). */
export { defineConfig, parseTrainConfig, type TrainConfig, type TrainConfigInput } from './train/config.ts';
export { train, type TrainOptions, type TrainResult } from './train/trainer.ts';
export { loadConfigFile } from './train/load-config.ts';
export { createPlanner, planMemory, formatPlan, type MemoryPlan } from './memory/index.ts';
