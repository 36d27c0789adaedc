/**
 * Where compiled steps run (docs/runners.md). `compile(graph, { runner })` takes any of them; the default is
 * onnxruntime-node on the CPU. In a browser import `runners/ort-web.ts` alone: this index also loads onnxruntime-node.
 */
export type { CompiledStep, Runner, RunnerSession } from './types.ts';
export { ortNodeRunner, type OrtNodeOptions } from './ort-node.ts';
export { ortWebRunner, type FallbackReport, type OrtWebBackend, type OrtWebModule, type OrtWebOptions, type OrtWebRunner, type OrtWebSession } from './ort-web.ts';
export type { PlacedNode } from './ort-web-placement.ts';
