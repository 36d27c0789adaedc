/**
 * Lowering a graph whose inputs keep symbolic dims (batch, sequence, past length) to an ONNX model whose axes stay
 * free, through the ordinary lowering (`core/onnx/lower.ts`).
 *
 * That lowering works on concrete shapes: every primitive writes the shapes it needs as constants (Reshape and Expand
 * targets, Slice bounds, Pad amounts, Range limits), through `LowerCtx.int64s` and `LowerCtx.scalar`, and nowhere
 * else. So the graph is specialised with a sentinel value per symbol (a prime above 10⁶ that no concrete number of
 * the graph equals) and lowered unchanged; then every such constant holding the value of a symbolic dim (`T`, `P+T`,
 * `2*T`) is replaced by nodes computing that dim at run time from the inputs' shapes (`Shape`, `Mul`, `Add`,
 * `Concat`). The inputs and outputs get ONNX dim_params instead of the sentinels. Any int64 constant left at or above
 * 10⁶ would be a shape the replacement missed, so it is an error rather than a model that only runs at one size.
 */
import { assertGraph } from '../../ir/check.ts';
import type { Graph, Var } from '../../ir/graph.ts';
import type { HostTensor } from '../../ir/host.ts';
import { isConcrete, normDim, resolveDim, type Dim } from '../../ir/shape.ts';
import { specialize } from '../../ir/specialize.ts';
import { eliminateDeadCode } from '../../ir/transform.ts';
import { lowerGraph } from '../../onnx/lower.ts';
import type { OnnxInitializer, OnnxModel, OnnxNode, OnnxValueInfo } from '../../onnx/model.ts';

export interface DynamicLowerOptions {
  /** Inputs baked in as initializers (the weights). */
  resident: ReadonlyMap<string, HostTensor>;
  /** ONNX dim_param for each symbol (e.g. `{ B: 'batch_size' }`); a polynomial is named by its formula over these. */
  dimNames: Readonly<Record<string, string>>;
}

const SENTINELS = [1_000_003, 1_000_033, 1_000_037, 1_000_039, 1_000_081, 1_000_099, 1_000_117, 1_000_121];
/** No shape the graph means as a number reaches this; every sentinel dim does. */
const SENTINEL_FLOOR = 1_000_000;
const NAME = /[A-Za-z_][A-Za-z0-9_]*/g;

/** Symbolic dims of the graph: every shape, plus the bounds slice and pad hold in their params. */
function symbolicDims(graph: Graph): Set<string> {
  const out = new Set<string>();
  const add = (d: Dim | undefined) => { if (typeof d === 'string') out.add(normDim(d) as string); };
  const addVar = (v: Var) => v.shape.forEach(add);
  graph.inputs.forEach((i) => addVar(i.v));
  for (const e of graph.eqns) {
    addVar(e.out);
    e.inputs.forEach(addVar);
    const p = e.params as Partial<Record<'start' | 'end' | 'before' | 'after' | 'per', Dim>>;
    if (e.prim.name === 'slice') { add(p.start); add(p.end); }
    if (e.prim.name === 'pad') { add(p.before); add(p.after); }
    if (e.prim.name === 'constant' && typeof p.per === 'string') {
      // The lowering would bake 1/sentinel into the model: a mean over a free axis has no runtime form here.
      throw new Error(`dynamic lowering: a constant divided by the symbolic dim '${p.per}' (a mean over a free axis) cannot be exported with free axes`);
    }
  }
  return out;
}

/** The terms of a canonical polynomial dim (`2*T`, `P+T`, `B*T-3`): coefficient and names. */
function terms(d: string): { coef: number; names: string[] }[] {
  return [...d.matchAll(/([+-]?)([^+-]+)/g)].map((m) => {
    let coef = m[1] === '-' ? -1 : 1;
    const names: string[] = [];
    for (const f of m[2]!.split('*')) {
      if (/^\d+$/.test(f)) coef *= Number(f);
      else names.push(f);
    }
    return { coef, names };
  });
}

/** Lowers `graph` (symbolic input shapes) to an ONNX model whose symbolic axes stay free. */
export function lowerDynamic(graph: Graph, opts: DynamicLowerOptions): OnnxModel {
  assertGraph(graph);
  const live = eliminateDeadCode(graph);
  const dims = symbolicDims(live);
  const symbols = [...new Set([...dims].flatMap((d) => d.match(NAME) ?? []))].sort();
  if (symbols.length > SENTINELS.length) throw new Error(`dynamic lowering: ${symbols.length} symbols; at most ${SENTINELS.length}`);
  const sentinel = Object.fromEntries(symbols.map((s, i) => [s, SENTINELS[i]!]));

  // Value at the sentinels -> the dim it stands for; two dims with one value could not be told apart.
  const dimOf = new Map<number, string>();
  for (const d of dims) {
    const v = resolveDim(d, sentinel);
    if (!Number.isSafeInteger(v) || Math.abs(v) < SENTINEL_FLOOR) throw new Error(`dynamic lowering: the dim '${d}' has no distinctive value (${v})`);
    const other = dimOf.get(v);
    if (other !== undefined && other !== d) throw new Error(`dynamic lowering: dims '${other}' and '${d}' take the same sentinel value`);
    dimOf.set(v, d);
  }

  // Where each symbol can be read at run time: an input axis of exactly that size.
  const source = new Map<string, { input: string; axis: number }>();
  for (const i of live.inputs) {
    if (opts.resident.has(i.name)) continue;
    i.v.shape.forEach((d, axis) => {
      if (typeof d === 'string' && symbols.includes(d) && !source.has(d)) source.set(d, { input: i.name, axis });
    });
  }
  const unread = symbols.filter((s) => !source.has(s));
  if (unread.length) throw new Error(`dynamic lowering: no input has an axis of size ${unread.join(', ')} to read it from`);

  const concrete = specialize(live, sentinel);
  const { model } = lowerGraph(concrete, { resident: opts.resident });
  const runtime = new RuntimeDims(source);
  const initializers: OnnxInitializer[] = [];
  for (const init of model.initializers) {
    const replaced = init.raw && init.dims.length <= 1 && !opts.resident.has(init.name) ? runtime.replace(init, dimOf) : false;
    if (!replaced) initializers.push(init);
  }
  initializers.push(...runtime.initializers);

  const symbolicShapes = new Map([...live.inputs, ...live.outputs].map((n) => [n.name, n.v.shape]));
  const named = (v: OnnxValueInfo): OnnxValueInfo => {
    const shape = symbolicShapes.get(v.name)!;
    if (isConcrete(shape)) return v;
    const dimParams = shape.map((d) => (typeof d === 'string' ? d.replace(NAME, (s) => opts.dimNames[s] ?? s) : null));
    return { ...v, dimParams };
  };
  return { ...model, nodes: [...runtime.nodes, ...model.nodes], initializers, inputs: model.inputs.map(named), outputs: model.outputs.map(named) };
}

/** The nodes that compute symbolic dims from the inputs' shapes, each dim once, as int64 [1]. */
class RuntimeDims {
  readonly nodes: OnnxNode[] = [];
  readonly initializers: OnnxInitializer[] = [];
  private readonly computed = new Map<string, string>();
  private count = 0;

  constructor(private readonly source: ReadonlyMap<string, { input: string; axis: number }>) {}

  /** Replaces a shape constant that holds symbolic dims by nodes writing the same name; false when it holds none. */
  replace(init: OnnxInitializer, dimOf: ReadonlyMap<number, string>): boolean {
    const values = readValues(init);
    if (!values) return false;
    const symbolic = values.map((v) => dimOf.get(v));
    const leak = init.dtype === 'int64' ? values.find((v, i) => symbolic[i] === undefined && Math.abs(v) >= SENTINEL_FLOOR) : undefined;
    if (leak !== undefined) throw new Error(`dynamic lowering: the shape constant ${init.name} holds ${leak}, which no symbolic dim explains`);
    if (symbolic.every((d) => d === undefined)) return false;
    if (init.dims.length === 0) {
      // A Range limit (iota): a scalar of the ramp's dtype.
      const asInt = this.temp('scalar');
      this.node('Squeeze', [this.dim(symbolic[0]!), this.constant([0])], asInt);
      if (init.dtype === 'int64') this.node('Identity', [asInt], init.name);
      else this.node('Cast', [asInt], init.name, { to: ONNX_CODE[init.dtype as keyof typeof ONNX_CODE] });
      return true;
    }
    // A shape vector: runs of plain numbers stay constants, symbolic entries are computed, all concatenated.
    const parts: string[] = [];
    let run: number[] = [];
    const flush = () => { if (run.length) parts.push(this.constant(run)); run = []; };
    values.forEach((v, i) => {
      const d = symbolic[i];
      if (d === undefined) run.push(v);
      else { flush(); parts.push(this.dim(d)); }
    });
    flush();
    this.node('Concat', parts, init.name, { axis: 0 });
    return true;
  }

  /** int64 [1] holding the dim's value. */
  private dim(d: string): string {
    const hit = this.computed.get(d);
    if (hit) return hit;
    let sum: string | undefined;
    for (const { coef, names } of terms(d)) {
      let term: string | undefined;
      for (const n of names) term = term ? this.binary('Mul', term, this.symbol(n)) : this.symbol(n);
      if (!term) term = this.constant([coef]);
      else if (coef !== 1) term = this.binary('Mul', term, this.constant([coef]));
      sum = sum ? this.binary('Add', sum, term) : term;
    }
    this.computed.set(d, sum!);
    return sum!;
  }

  private symbol(name: string): string {
    const hit = this.computed.get(name);
    if (hit) return hit;
    const { input, axis } = this.source.get(name)!;
    const out = this.temp(`dim_${name}`);
    this.node('Shape', [input], out, { start: axis, end: axis + 1 });
    this.computed.set(name, out);
    return out;
  }

  private binary(op: 'Mul' | 'Add', a: string, b: string): string {
    const out = this.temp(op.toLowerCase());
    this.node(op, [a, b], out);
    return out;
  }

  private constant(values: readonly number[]): string {
    const name = this.temp('const');
    const data = BigInt64Array.from(values, (v) => BigInt(v));
    this.initializers.push({ name, dtype: 'int64', dims: [values.length], raw: new Uint8Array(data.buffer) });
    return name;
  }

  private node(op: string, inputs: string[], out: string, attrs?: OnnxNode['attrs']): void {
    this.nodes.push({ op, inputs, outputs: [out], name: `dynamic_${this.count++}`, ...(attrs ? { attrs } : {}) });
  }

  private temp(hint: string): string {
    return `dynamic_${hint}_${this.count++}`;
  }
}

const ONNX_CODE = { float32: 1, float64: 11, float16: 10, int32: 6 } as const;

/** The numbers of a small int64 or float initializer (shape vectors, Range limits); undefined for other kinds. */
function readValues(init: OnnxInitializer): number[] | undefined {
  const raw = init.raw!;
  const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const n = init.dims.length === 0 ? 1 : init.dims[0]!;
  if (init.dtype === 'int64') return Array.from({ length: n }, (_, i) => Number(view.getBigInt64(8 * i, true)));
  // Float ramps (iota in float32) take their length as a float scalar.
  if (init.dims.length === 0 && init.dtype === 'float32') return [view.getFloat32(0, true)];
  if (init.dims.length === 0 && init.dtype === 'float64') return [view.getFloat64(0, true)];
  if (init.dims.length === 0 && init.dtype === 'int32') return [view.getInt32(0, true)];
  return undefined;
}
