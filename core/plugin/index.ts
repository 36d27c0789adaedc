export { baseWeightsOf, HOOK_STYLES, type AttentionFn, type BaseWeights, type EmbeddingsFn, type HookName, type HookStyle, type LinearFn, type ParamFn, type PendingParam, type Plugin, type PluginHooks } from './hooks.ts';
export type { MemoryItem, PluginContext, StepContext, StepResult } from './context.ts';
export type { EstimatorMemory, EstimatorStep, GradientEstimator } from './estimator.ts';
export { PluginDriver, PluginError, orderPlugins, structuralProblems } from './driver.ts';
export { linearWeightMatcher, type WeightTargets } from './weight-targets.ts';
export { dequantizedMatmul, type DequantFormat, type DequantMatmulParams, type DequantParams } from './dequantized-matmul.ts';
