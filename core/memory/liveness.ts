/**
 * Peak memory of running a graph the way onnxruntime (CPU) runs it. The graph is lowered to ONNX exactly as
 * `compile` lowers it, the transformations of onnxruntime that change what is allocated are applied, and the nodes
 * are run in onnxruntime's order: each node allocates its outputs when it runs and every value is freed after its
 * last use (graph outputs live to the end, since they are handed back). Graph inputs and constants are owned
 * elsewhere and not counted here. What the simulation takes from onnxruntime, each point checked against its own
 * accounting (the output sizes of a profiled run, replayed in its execution order over its optimised graph):
 *
 * - Nodes, not equations: a primitive may lower to several nodes whose intermediate results (RMSNorm's x², SiLU's
 *   σ(x)) are tensors too.
 * - Common subexpression elimination: nodes with the same operator, attributes and inputs are merged into the first
 *   one in topological order. A backward pass that recomputes σ(x) or x·x from x therefore reads the forward pass's
 *   own intermediate, which stays alive from the forward pass to the backward pass.
 * - Constant folding: a node that depends on no graph input is computed when the session loads and kept as an
 *   initializer (counted by `foldedConstantBytes`), so it allocates nothing at run time.
 * - Aliases: Reshape, Squeeze, Unsqueeze, Flatten and Identity share their input's buffer.
 * - Fused transposes: a transpose of the last two axes read only by MatMul or Gemm nodes is folded into them
 *   (MatMulTransposeFusion, GemmTransposeFusion), and a transpose of such a transpose cancels out; neither allocates.
 * - Execution order: not the order the nodes are written in. onnxruntime's default (GraphViewer) is a reverse
 *   depth-first search from the leaf nodes (those whose outputs nothing reads), visiting a node's producers in
 *   node-index order with an explicit stack and emitting each node once its producers are emitted. On a gradient
 *   graph this interleaves forward and backward work differently from the trace (stories260k full fine-tuning at
 *   16x256: 364 MiB at its peak instead of 322 in trace order).
 *
 * Checked on stories260k (full and LoRA, 16x256) and SmolLM2-135M (full and LoRA, 1x128): the simulated peak equals
 * the replayed one to 0.1 MiB. What it leaves out: workspaces inside kernels and what the allocator keeps. With
 * onnxruntime's arena and memory pattern off every tensor is a glibc malloc; glibc raises its mmap threshold as large
 * blocks are freed and then serves tensors from heaps that fragment, so a run's resident peak creeps up over the
 * first steps (SmolLM2-135M LoRA, checkpointed, 4x256: 1377, 1550, 1562, 1579, 1579 MB over five steps). The
 * trainer therefore fixes the threshold (memory.mmapThreshold, core/memory/allocator.ts), and measured peaks stay
 * within 10% of the plan (bench:memory).
 */
import type { Graph } from '../ir/graph.ts';
import { byteSize, DTYPES, type DType } from '../ir/dtype.ts';
import { lowerGraph } from '../onnx/lower.ts';
import { runtimeOrder } from './runtime-order.ts';
import type { OnnxNode } from '../onnx/model.ts';

export interface LivenessReport {
  /** Largest total of live intermediate and output bytes at any point. */
  peakBytes: number;
  /** Index (in `graph.eqns`) of the equation whose node runs at the peak; -1 when nothing is allocated. */
  peakAt: number;
  /** Bytes of the graph's outputs (alive at the end). */
  outputBytes: number;
  /** ONNX nodes the graph lowers to (before onnxruntime's own rewrites): what a session's size grows with. */
  nodes: number;
}

interface TensorInfo {
  dtype: DType;
  shape: number[] | undefined;
}

const ALIASES = new Set(['Reshape', 'Squeeze', 'Unsqueeze', 'Flatten', 'Identity']);
const SAME_SHAPE = new Set(['Sigmoid', 'Sqrt', 'Reciprocal', 'Neg', 'Exp', 'Log', 'Abs', 'Relu', 'Tanh', 'Erf', 'Softplus', 'Identity', 'Softmax', 'LogSoftmax']);
const BROADCAST = new Set(['Add', 'Sub', 'Mul', 'Div', 'Pow', 'Max', 'Min', 'Where', 'And', 'Or', 'Equal', 'Less', 'Greater', 'LessOrEqual', 'GreaterOrEqual']);
const COMPARISONS = new Set(['Equal', 'Less', 'Greater', 'LessOrEqual', 'GreaterOrEqual', 'And', 'Or', 'Not']);
const REDUCTIONS = new Set(['ReduceSum', 'ReduceMean', 'ReduceMax', 'ReduceMin', 'ReduceProd']);
const NONDETERMINISTIC = new Set(['RandomNormal', 'RandomUniform', 'RandomNormalLike', 'RandomUniformLike', 'Multinomial', 'Bernoulli', 'Dropout']);
const BY_CODE = new Map<number, DType>(Object.entries(DTYPES).map(([k, v]) => [v.onnx, k as DType]));

function bytesOf(t: TensorInfo | undefined): number | undefined {
  if (!t?.shape) return undefined;
  return t.shape.reduce((a, d) => a * d, byteSize(t.dtype));
}

function broadcast(shapes: (number[] | undefined)[]): number[] | undefined {
  if (shapes.some((s) => !s)) return undefined;
  const rank = Math.max(...shapes.map((s) => s!.length));
  const out: number[] = [];
  for (let i = 0; i < rank; i++) {
    let d = 1;
    for (const s of shapes) d = Math.max(d, s![s!.length - rank + i] ?? 1);
    out.push(d);
  }
  return out;
}

/** A transpose that swaps the last two axes and leaves the others in place. */
function swapsLastTwo(n: OnnxNode): boolean {
  if (n.op !== 'Transpose') return false;
  const perm = n.attrs?.perm as number[] | undefined;
  if (!perm) return false;
  const r = perm.length;
  return r >= 2 && perm[r - 1] === r - 2 && perm[r - 2] === r - 1 && perm.slice(0, -2).every((p, i) => p === i);
}

export function simulateLiveness(graph: Graph): LivenessReport {
  const { model, origins } = lowerGraph(graph);
  const nodes = model.nodes;
  const outputNames = new Set(model.outputs.map((o) => o.name));

  // What every value is: inputs and initializers as declared, equation results from the IR, the intermediate values
  // of multi-node lowerings by a small shape inference (falling back to the equation's result size).
  const info = new Map<string, TensorInfo>();
  for (const i of model.inputs) info.set(i.name, { dtype: i.dtype, shape: [...i.dims] });
  const constantInts = new Map<string, number[]>();
  for (const init of model.initializers) {
    info.set(init.name, { dtype: init.dtype, shape: [...init.dims] });
    if (init.dtype === 'int64' && init.raw) {
      const view = new DataView(init.raw.buffer, init.raw.byteOffset, init.raw.byteLength);
      constantInts.set(init.name, Array.from({ length: init.raw.byteLength / 8 }, (_, k) => Number(view.getBigInt64(8 * k, true))));
    }
  }
  const produced = new Set<number>(graph.inputs.map((i) => i.v.id));
  const eqnOut = new Map<string, TensorInfo>();
  const outputOf = new Map<number, string>();
  for (const o of graph.outputs) if (!produced.has(o.v.id) && !outputOf.has(o.v.id)) outputOf.set(o.v.id, o.name);
  for (const e of graph.eqns) {
    eqnOut.set(outputOf.get(e.out.id) ?? `v${e.out.id}`, { dtype: e.out.dtype, shape: e.out.shape as number[] });
  }
  const fallback = (node: OnnxNode): TensorInfo => {
    const e = graph.eqns[origins.get(node.name)?.eqnIndex ?? -1];
    return e ? { dtype: e.out.dtype, shape: e.out.shape as number[] } : { dtype: 'float32', shape: undefined };
  };
  const infer = (node: OnnxNode): TensorInfo => {
    const ins = node.inputs.map((n) => info.get(n));
    const first = ins[0];
    const a = node.attrs ?? {};
    if (SAME_SHAPE.has(node.op) && first) return first;
    if (node.op === 'Cast' && first) return { dtype: BY_CODE.get(a.to as number) ?? first.dtype, shape: first.shape };
    // The data's dtype, the indices' shape (the bfloat16 widening's table lookup, NF4's code values).
    if (node.op === 'GatherElements' && first && ins[1]) return { dtype: first.dtype, shape: ins[1].shape };
    if (BROADCAST.has(node.op) && first) {
      const dtype = COMPARISONS.has(node.op) ? 'bool' : node.op === 'Where' ? ins[1]?.dtype ?? first.dtype : first.dtype;
      return { dtype, shape: broadcast(ins.map((t) => t?.shape)) };
    }
    if (REDUCTIONS.has(node.op) && first?.shape) {
      const rank = first.shape.length;
      const axes = (constantInts.get(node.inputs[1] ?? '') ?? [...Array(rank).keys()]).map((x) => (x < 0 ? x + rank : x));
      const keep = (a.keepdims as number | undefined) ?? 1;
      const shape = first.shape.flatMap((d, i) => (axes.includes(i) ? (keep ? [1] : []) : [d]));
      return { dtype: first.dtype, shape };
    }
    if (node.op === 'Transpose' && first?.shape) {
      const perm = (a.perm as number[] | undefined) ?? [...first.shape.keys()].reverse();
      return { dtype: first.dtype, shape: perm.map((p) => first.shape![p]!) };
    }
    if (node.op === 'Gemm' && first?.shape && ins[1]?.shape) {
      const m = a.transA ? first.shape[1]! : first.shape[0]!, n = a.transB ? ins[1].shape[0]! : ins[1].shape[1]!;
      return { dtype: first.dtype, shape: [m, n] };
    }
    if (node.op === 'MatMul' && first?.shape && ins[1]?.shape) {
      const [x, y] = [first.shape, ins[1].shape];
      const batch = broadcast([x.slice(0, -2), y.slice(0, -2)]);
      return { dtype: first.dtype, shape: batch ? [...batch, x.at(-2)!, y.at(-1)!] : undefined };
    }
    if (node.op === 'Reshape' && first?.shape) {
      const target = constantInts.get(node.inputs[1] ?? '');
      if (target) {
        const total = first.shape.reduce((p, d) => p * d, 1);
        const dims = target.map((d, i) => (d === 0 ? first.shape![i]! : d));
        const known = dims.reduce((p, d) => (d === -1 ? p : p * d), 1);
        return { dtype: first.dtype, shape: dims.map((d) => (d === -1 ? total / known : d)) };
      }
    }
    if (node.op === 'Unsqueeze' && first?.shape) {
      const axes = constantInts.get(node.inputs[1] ?? '');
      if (axes) {
        const rank = first.shape.length + axes.length;
        const norm = axes.map((x) => (x < 0 ? x + rank : x));
        const shape: number[] = [];
        let k = 0;
        for (let i = 0; i < rank; i++) shape.push(norm.includes(i) ? 1 : first.shape[k++]!);
        return { dtype: first.dtype, shape };
      }
    }
    return fallback(node);
  };
  for (const node of nodes) {
    for (const o of node.outputs) {
      if (!o) continue;
      const known = eqnOut.get(o);
      const t = known ?? infer(node);
      info.set(o, bytesOf(t) === undefined ? fallback(node) : t);
    }
  }

  // Graph structure: who produces each value, and each node's producers.
  const producerOf = new Map<string, number>();
  nodes.forEach((n, i) => { for (const o of n.outputs) if (o) producerOf.set(o, i); });
  const producersOf = (inputs: readonly string[]) => [...new Set(inputs.map((v) => producerOf.get(v)).filter((p): p is number => p !== undefined))].sort((x, y) => x - y);

  // Constant folding: nodes that depend on no graph input (and draw no random numbers).
  const constant = new Set<string>(model.initializers.map((i) => i.name));
  const folded = new Uint8Array(nodes.length);
  nodes.forEach((n, i) => {
    if (!NONDETERMINISTIC.has(n.op) && n.inputs.every((v) => !v || constant.has(v))) {
      folded[i] = 1;
      for (const o of n.outputs) if (o) constant.add(o);
    }
  });

  // Common subexpression elimination, in the topological order the optimiser sees: a node equal to an earlier one
  // (operator, attributes, inputs after earlier merges) is removed and its readers read the earlier node's outputs.
  const rename = new Map<string, string>();
  const canonical = (v: string) => rename.get(v) ?? v;
  const removed = new Uint8Array(nodes.length);
  const seen = new Map<string, number>();
  const initialOrder = runtimeOrder(nodes.map((n) => producersOf(n.inputs)), (i) => !folded[i]);
  for (const i of initialOrder) {
    const n = nodes[i]!;
    if (NONDETERMINISTIC.has(n.op)) continue;
    const key = `${n.op}|${n.inputs.map(canonical).join(',')}|${JSON.stringify(n.attrs ?? {})}`;
    const earlier = seen.get(key);
    if (earlier === undefined) {
      seen.set(key, i);
      continue;
    }
    if (n.outputs.some((o) => outputNames.has(o))) continue; // onnxruntime does not eliminate graph outputs
    n.outputs.forEach((o, k) => { if (o) rename.set(o, nodes[earlier]!.outputs[k]!); });
    removed[i] = 1;
  }
  const inputsOf = nodes.map((n) => n.inputs.map((v) => (v ? canonical(v) : v)));

  // Transposes folded into the matrix products reading them, and transposes cancelling such a transpose.
  const readers = new Map<string, number[]>();
  nodes.forEach((_, i) => {
    if (folded[i] || removed[i]) return;
    for (const v of inputsOf[i]!) if (v) (readers.get(v) ?? readers.set(v, []).get(v)!).push(i);
  });
  const fused = new Uint8Array(nodes.length);
  nodes.forEach((n, i) => {
    if (folded[i] || removed[i] || !swapsLastTwo(n) || outputNames.has(n.outputs[0]!)) return;
    const src = producerOf.get(inputsOf[i]![0]!);
    const cancels = src !== undefined && !folded[src] && swapsLastTwo(nodes[src]!);
    const intoProducts = (readers.get(n.outputs[0]!) ?? []).every((r) => nodes[r]!.op === 'MatMul' || nodes[r]!.op === 'Gemm' || swapsLastTwo(nodes[r]!));
    if (cancels || intoProducts) fused[i] = 1;
  });

  // The run, in onnxruntime's order.
  const order = runtimeOrder(inputsOf.map(producersOf), (i) => !folded[i] && !removed[i]);
  const uses = new Map<string, number>();
  for (const i of order) for (const v of inputsOf[i]!) if (v) uses.set(v, (uses.get(v) ?? 0) + 1);
  const bufferOf = new Map<string, string>(); // value -> buffer (its own name, or the value it aliases)
  const remaining = new Map<string, number>(); // buffer -> uses left across the values sharing it
  const size = new Map<string, number>();
  const external = new Set<string>([...constant, ...model.inputs.map((i) => i.name)]);
  let live = 0, peak = 0, peakAt = -1;
  for (const i of order) {
    const n = nodes[i]!;
    const ins = inputsOf[i]!;
    const view = (ALIASES.has(n.op) || fused[i] === 1) && ins[0] !== undefined && ins[0] !== '';
    for (const o of n.outputs) {
      if (!o) continue;
      const keep = (uses.get(o) ?? 0) + (outputNames.has(o) ? 1 : 0);
      if (view && external.has(ins[0]!)) external.add(o);
      else if (view && bufferOf.has(ins[0]!)) {
        const b = bufferOf.get(ins[0]!)!;
        bufferOf.set(o, b);
        remaining.set(b, remaining.get(b)! + keep);
      } else {
        const bytes = bytesOf(info.get(o)) ?? 0;
        bufferOf.set(o, o);
        size.set(o, bytes);
        remaining.set(o, keep);
        live += bytes;
      }
    }
    if (live > peak) {
      peak = live;
      peakAt = origins.get(n.name)?.eqnIndex ?? -1;
    }
    for (const v of ins) {
      const b = v ? bufferOf.get(v) : undefined;
      if (b === undefined) continue; // owned outside the run
      const left = remaining.get(b)! - 1;
      remaining.set(b, left);
      if (left === 0) live -= size.get(b)!;
    }
    for (const o of n.outputs) {
      const own = o ? bufferOf.get(o) : undefined;
      if (own === o && remaining.get(own) === 0) live -= size.get(own)!; // dead on arrival
    }
  }
  const outputBytes = graph.outputs.reduce((s, o) => s + (bytesOf({ dtype: o.v.dtype, shape: o.v.shape as number[] }) ?? 0), 0);
  return { peakBytes: peak, peakAt, outputBytes, nodes: nodes.length };
}

/**
 * Bytes of the equation results whose shapes have no symbolic dim (parameter-shaped values: weight gradients and
 * transposes, dequantised weights, a prompt encoder's states), counted on the symbolic graph, so the same for every
 * batch shape. The second term of the session model (constants.ts, sessionBytes).
 */
export function fixedShapeBytes(symbolic: Graph): number {
  let total = 0;
  for (const e of symbolic.eqns) {
    if (e.out.shape.every((d) => typeof d === 'number')) total += bytesOf({ dtype: e.out.dtype, shape: e.out.shape as number[] }) ?? 0;
  }
  return total;
}
