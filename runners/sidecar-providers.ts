/** The execution providers a sidecar can serve, and the start-up probe that fails early with what to install. */
import { encodeModel } from '../core/onnx/model.ts';
import { ortNodeRunner } from './ort-node.ts';

export const SIDECAR_PROVIDERS = ['cuda', 'webgpu', 'cpu'] as const;
export type SidecarProvider = (typeof SIDECAR_PROVIDERS)[number];

export const EXECUTION_PROVIDERS: Record<SidecarProvider, string[]> = { cuda: ['cuda'], webgpu: ['webgpu'], cpu: ['cpu'] };

const PROVIDER_HELP: Record<SidecarProvider, string> = {
  cuda: "onnxruntime-node's CUDA provider is not installed or CUDA 12 / cuDNN 9 libraries are missing: reinstall with `npm install onnxruntime-node --onnxruntime-node-install=cuda12` (or ONNXRUNTIME_NODE_INSTALL=cuda12), see docs/sidecar.md",
  webgpu: 'no WebGPU adapter: onnxruntime-node uses Dawn on Vulkan (Linux) / Metal / D3D12; check the GPU driver',
  cpu: 'the CPU provider should always load: is onnxruntime-node installed?',
};

/** Loads and runs a two-element Add on the provider, so a missing provider fails at start, not on the first step. */
export async function probeProvider(provider: SidecarProvider): Promise<void> {
  const bytes = encodeModel({
    opset: 17, nodes: [{ op: 'Add', inputs: ['x', 'x'], outputs: ['y'], name: 'probe' }], initializers: [],
    inputs: [{ name: 'x', dtype: 'float32', dims: [2] }], outputs: [{ name: 'y', dtype: 'float32', dims: [2] }],
  });
  try {
    const s = await ortNodeRunner({ executionProviders: EXECUTION_PROVIDERS[provider] }).load({ model: { bytes }, inputs: [], outputs: [], origins: new Map() });
    const y = (await s.run({ x: { dtype: 'float32', shape: [2], data: new Float32Array([1, 2]) } })).y!.data;
    await s.release();
    if (y[0] !== 2 || y[1] !== 4) throw new Error(`1 + 1 gave ${y[0]}`);
  } catch (e) {
    throw new Error(`the ${provider} execution provider does not work here: ${PROVIDER_HELP[provider]}\n  (${(e as Error).message.split('\n')[0]})`, { cause: e });
  }
}
