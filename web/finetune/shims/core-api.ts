/**
 * core's public API (core/index.ts) as the page's bundle sees it: the parts with no Node import. Plugins import core
 * through its public barrel, which also carries the trainer, the Hub client and onnxruntime-node; build.ts resolves
 * the barrel to this file, so bundling plugins/lora pulls only graph building. A name a bundled plugin needs and
 * this file lacks fails the build ("No matching export"), never the page at run time.
 */
export * as op from '../../../core/ops/api.ts';
export * as nn from '../../../core/nn/index.ts';
export { trace, GraphBuilder, Tensor, GraphError } from '../../../core/ir/graph.ts';
export type { Graph, Var, Eqn, TensorType, NamedVar } from '../../../core/ir/graph.ts';
export { hostTensor, sizeOf, type HostTensor } from '../../../core/ir/host.ts';
export { seededRandom, argmax } from '../../../core/generate/sampling.ts';
export type { LinearSite, ModelHooks } from '../../../core/models/llama.ts';
export * from '../../../core/plugin/index.ts';
