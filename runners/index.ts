/**
 * Where compiled steps run (docs/runners.md). `compile(graph, { runner })` takes any of them; the default is
 * onnxruntime-node on the CPU. This index also loads onnxruntime-node and the sidecar's server: in a browser import
 * `tuneforge/runners/web` (onnxruntime-web) or `tuneforge/runners/sidecar` (the sidecar's runner, fetch only) alone.
 */
export type { CompiledStep, LoadOptions, Runner, RunnerSession } from './types.ts';
export { holdOutputs, holds, type HoldingSession } from './holding.ts';
export { sidecar, SidecarError, type SidecarOptions, type SidecarRunner, type SidecarStats } from './sidecar.ts';
export { SIDECAR_PROVIDERS, startSidecar, type RunningSidecar, type SidecarInfo, type SidecarLimits, type SidecarProvider, type SidecarServerOptions } from './sidecar-server.ts';
export { ortNodeRunner, type OrtNodeOptions } from './ort-node.ts';
export { ortWebRunner, type FallbackReport, type OrtWebBackend, type OrtWebModule, type OrtWebOptions, type OrtWebRunner, type OrtWebSession } from './ort-web.ts';
export type { PlacedNode } from './ort-web-placement.ts';
