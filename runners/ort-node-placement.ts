/**
 * Where onnxruntime-node ran each node of a step, on a session whose providers are not only the CPU (WebGPU, CUDA):
 * onnxruntime puts every node its provider has no kernel for on the CPU without a word, and copies the values across.
 * Its profiler records each kernel's provider, so the session profiles its first run, stops (`endProfiling`), and
 * this file reads that profile into the nodes that ran on the CPU and the copies made.
 */
import { readFileSync } from 'node:fs';
import type { NodeOrigin } from '../core/onnx/lower.ts';
import { describeCpuNodes, type PlacedNode } from './ort-web-placement.ts';

export interface NodePlacement {
  /** Execution provider -> kernels it ran in the profiled run (copy kernels included). */
  counts: Record<string, number>;
  /** Kernels that ran on the CPU provider (copies excluded), with the IR equation behind each where known. */
  cpuNodes: PlacedNode[];
  /** Host <-> device copies onnxruntime inserted (Memcpy kernels). */
  copies: number;
  summary: string;
}

interface ProfileEvent {
  cat?: string;
  name?: string;
  args?: { op_name?: string; provider?: string };
}

/** The placement in onnxruntime's profile file (Chrome trace JSON: one `Node` event per kernel run, `<node>_kernel_time`). */
export function readPlacement(profileFile: string, origins: ReadonlyMap<string, NodeOrigin>): NodePlacement {
  const events = JSON.parse(readFileSync(profileFile, 'utf8')) as ProfileEvent[];
  const counts: Record<string, number> = {};
  const cpuNodes: PlacedNode[] = [];
  let copies = 0;
  for (const e of events) {
    if (e.cat !== 'Node' || !e.name?.endsWith('_kernel_time') || !e.args?.provider) continue;
    const node = e.name.slice(0, -'_kernel_time'.length), opType = e.args.op_name ?? '?';
    counts[e.args.provider] = (counts[e.args.provider] ?? 0) + 1;
    if (opType.startsWith('Memcpy')) {
      copies++;
      continue;
    }
    if (e.args.provider !== 'CPUExecutionProvider') continue;
    const o = origins.get(node);
    cpuNodes.push({ opType, node, ...(o ? { origin: `equation ${o.eqnIndex}: ${o.signature}` } : {}) });
  }
  const total = Object.values(counts).reduce((a, b) => a + b, 0);
  const devices = Object.keys(counts).filter((p) => p !== 'CPUExecutionProvider').join(', ');
  const rest = devices ? `, the rest on ${devices}` : '';
  const summary = cpuNodes.length === 0
    ? `all ${total - copies} nodes on ${devices}${copies ? `, ${copies} host<->device copies` : ''}`
    : `${describeCpuNodes(cpuNodes)} of ${total - copies}${rest}; ${copies} host<->device copies`;
  return { counts, cpuNodes, copies, summary };
}
