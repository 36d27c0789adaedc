/**
 * Which nodes of a session onnxruntime put on its CPU execution provider, read from onnxruntime's own log.
 *
 * onnxruntime prints the placement of every node at verbose level when a session is initialised ("Node placements",
 * then "Node(s) placed on [CPUExecutionProvider]. Number of nodes: N" and one "  OpType (node name)" line per node).
 * onnxruntime-web's wasm module writes that log through `console.error`, bound once when the module first starts
 * (the first session of the page), so the tap below must be in place before then: `installLogTap()` runs when an
 * onnxruntime-web runner is created. Under Bun, Deno or Node the module writes to file descriptor 2 instead, which no
 * tap sees; WebGPU, the backend with something to fall back from, is a browser matter there anyway.
 */
import type { NodeOrigin } from '../core/onnx/lower.ts';

/** One node onnxruntime placed on its CPU provider, with the IR equation it was lowered from. */
export interface PlacedNode {
  opType: string;
  node: string;
  /** `equation N: signature` when the node comes from an IR equation (not from onnxruntime's own rewrites). */
  origin?: string;
}

export interface Placements {
  /** Execution provider name -> number of nodes (after onnxruntime's optimisations, copy nodes included). */
  counts: Record<string, number>;
  cpuNodes: PlacedNode[];
  /** MemcpyFromHost / MemcpyToHost nodes: one per value crossing between the CPU and the device. */
  copies: number;
}

type Listener = (line: string) => void;
const listeners = new Set<Listener>();
let tapped = false;

/** Wraps console.error and console.log once, forwarding every line to the active listeners (and on as before). */
export function installLogTap(): void {
  if (tapped || typeof console === 'undefined') return;
  tapped = true;
  for (const method of ['error', 'log', 'warn'] as const) {
    const original = console[method].bind(console);
    console[method] = (...args: unknown[]) => {
      if (listeners.size) {
        const line = args.map(String).join(' ');
        for (const l of listeners) l(line);
      }
      original(...args);
    };
  }
}

/**
 * Whether the log reaches console at all: onnxruntime-web's module writes to file descriptor 2 wherever it sees
 * Node's `process` (Bun, Deno and Node), and the verbose log would then flood the terminal unread.
 */
export function logCapturable(): boolean {
  const proc = (globalThis as { process?: { versions?: { node?: string } } }).process;
  return !proc?.versions?.node;
}

/** Runs `fn` while collecting every console line; the lines are returned with fn's result. */
export async function captureLog<T>(fn: () => Promise<T>): Promise<{ value: T; lines: string[] }> {
  const lines: string[] = [];
  const listener: Listener = (line) => lines.push(...line.split('\n'));
  listeners.add(listener);
  try {
    return { value: await fn(), lines };
  } finally {
    listeners.delete(listener);
  }
}

const ALL_ON = /All nodes placed on \[(\w+)\]\. Number of nodes: (\d+)/;
const SOME_ON = /Node\(s\) placed on \[(\w+)\]\. Number of nodes: (\d+)/;
const NODE_LINE = /VerifyEachNodeIsAssignedToAnEp\]\s{2,}(\S+) \((.*)\)\s*$/;

/** Parses onnxruntime's "Node placements" block; undefined when the log holds none (it was not captured). */
export function parsePlacements(lines: readonly string[], origins: ReadonlyMap<string, NodeOrigin>): Placements | undefined {
  const counts: Record<string, number> = {};
  const cpuNodes: PlacedNode[] = [];
  let copies = 0, current: string | undefined, seen = false;
  for (const line of lines) {
    const all = ALL_ON.exec(line);
    if (all) { counts[all[1]!] = Number(all[2]); seen = true; current = undefined; continue; }
    const some = SOME_ON.exec(line);
    if (some) { counts[some[1]!] = Number(some[2]); seen = true; current = some[1]; continue; }
    const node = current ? NODE_LINE.exec(line) : null;
    if (!node) continue;
    const [, opType, name] = node as unknown as [string, string, string];
    if (opType.startsWith('Memcpy')) copies++;
    if (current !== 'CPUExecutionProvider') continue;
    const o = origins.get(name);
    cpuNodes.push({ opType, node: name, ...(o ? { origin: `equation ${o.eqnIndex}: ${o.signature}` } : {}) });
  }
  return seen ? { counts, cpuNodes, copies } : undefined;
}

/** One placed node as a line: its op type, ONNX name and the IR equation it came from. */
export const formatPlacedNode = (n: PlacedNode): string => `${n.opType} ${n.node}${n.origin ? ` <- ${n.origin}` : ''}`;

/** "12 nodes on CPUExecutionProvider (Unsqueeze ×8, Shape ×4)": the CPU nodes grouped by op type. */
export function describeCpuNodes(nodes: readonly PlacedNode[]): string {
  const byOp = new Map<string, number>();
  for (const n of nodes) byOp.set(n.opType, (byOp.get(n.opType) ?? 0) + 1);
  const groups = [...byOp].sort((a, b) => b[1] - a[1]).map(([op, k]) => `${op} ×${k}`);
  return `${nodes.length} node${nodes.length === 1 ? '' : 's'} on CPUExecutionProvider${groups.length ? ` (${groups.join(', ')})` : ''}`;
}
