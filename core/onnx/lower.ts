import type { DType, TypedArray } from '../ir/dtype.ts';
import { typedArrayFor } from '../ir/dtype.ts';
import type { Graph, Var } from '../ir/graph.ts';
import { sizeOf, type HostTensor } from '../ir/host.ts';
import type { AttrValue, LowerCtx } from '../ir/primitive.ts';
import { formatShape, isConcrete } from '../ir/shape.ts';
import type { OnnxInitializer, OnnxModel, OnnxNode, OnnxValueInfo } from './model.ts';

export const OPSET = 18;

export interface LowerOptions {
  /** Inputs whose values are baked into the model as initializers (frozen weights): not fed at run time. */
  resident?: ReadonlyMap<string, HostTensor>;
  /** LowerCtx.orderedScatter (default true): row scatter-adds as one-hot matrix products, summed in a fixed order. */
  orderedScatter?: boolean;
}

/** What each ONNX node came from, so runtime errors can name the op and shapes. */
export interface NodeOrigin {
  prim: string;
  eqnIndex: number;
  signature: string;
}

export interface LoweredModel {
  model: OnnxModel;
  origins: Map<string, NodeOrigin>;
}

function bytesView(data: TypedArray): Uint8Array {
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

/** Lowers a graph with concrete shapes to an ONNX model (standard domain, opset 18). */
export function lowerGraph(graph: Graph, opts: LowerOptions = {}): LoweredModel {
  const resident = opts.resident ?? new Map<string, HostTensor>();
  const nodes: OnnxNode[] = [];
  const initializers: OnnxInitializer[] = [];
  const origins = new Map<string, NodeOrigin>();
  const names = new Map<number, string>();
  const used = new Set<string>();
  const cache = new Map<string, string>();
  let tempCount = 0;

  const claim = (name: string) => {
    if (used.has(name)) throw new Error(`lowering: name '${name}' is used twice among inputs and outputs`);
    used.add(name);
    return name;
  };
  const addInit = (dtype: DType, dims: readonly number[], data: TypedArray, key?: string): string => {
    if (key && cache.has(key)) return cache.get(key)!;
    const name = claim(`c${initializers.length}`);
    initializers.push({ name, dtype, dims, raw: bytesView(data) });
    if (key) cache.set(key, name);
    return name;
  };

  for (const input of graph.inputs) {
    if (!isConcrete(input.v.shape)) throw new Error(`lowering: input '${input.name}' has symbolic shape ${formatShape(input.v.shape)}; specialise dims first`);
    names.set(input.v.id, claim(input.name));
    const r = resident.get(input.name);
    if (r) {
      const expect = input.v.shape as number[];
      if (r.dtype !== input.v.dtype || r.shape.length !== expect.length || r.shape.some((d, i) => d !== expect[i])) {
        throw new Error(`resident value for '${input.name}' is ${r.dtype}${formatShape(r.shape)}, the graph expects ${input.v.dtype}${formatShape(expect)}`);
      }
      initializers.push({ name: input.name, dtype: r.dtype, dims: r.shape, raw: bytesView(r.data) });
    }
  }
  // Graph inputs fed at run time, by value id, and the views of them the lowerings asked for (LowerCtx.inputView).
  const fedInput = new Map(graph.inputs.filter((i) => !resident.has(i.name)).map((i) => [i.v.id, i]));
  const views: OnnxValueInfo[] = [];
  const viewOf = (v: Var, dims: readonly number[], dtype: DType = v.dtype): string | undefined => {
    const input = fedInput.get(v.id);
    if (!input) return undefined;
    if (sizeOf(dims) !== sizeOf(input.v.shape as number[])) throw new Error(`lowering: a view [${dims}] of input '${input.name}' ${formatShape(input.v.shape)} must keep its element count`);
    const name = `${input.name}:view[${dims.join(',')}]${dtype === input.v.dtype ? '' : `:${dtype}`}`;
    if (!views.some((x) => x.name === name)) views.push({ name: claim(name), dtype, dims: [...dims], viewOf: input.name });
    return name;
  };
  for (const name of resident.keys()) {
    if (!graph.inputs.some((i) => i.name === name)) throw new Error(`resident value '${name}' is not an input of the graph`);
  }
  // An equation whose result is a graph output writes straight to the output's name.
  const outputOf = new Map<number, string>();
  for (const o of graph.outputs) if (!names.has(o.v.id) && !outputOf.has(o.v.id)) outputOf.set(o.v.id, o.name);

  const nameOf = (v: Var) => {
    const n = names.get(v.id);
    if (n === undefined) throw new Error(`lowering: %${v.id} used before it is defined`);
    return n;
  };

  graph.eqns.forEach((eqn, k) => {
    const out = claim(outputOf.get(eqn.out.id) ?? `v${eqn.out.id}`);
    names.set(eqn.out.id, out);
    const nodeBase = `${eqn.prim.name}_${k}`;
    const signature = `${eqn.prim.name}(${eqn.inputs.map((v) => `${v.dtype}${formatShape(v.shape)}`).join(', ')}) -> ${eqn.out.dtype}${formatShape(eqn.out.shape)}`;
    let sub = 0;
    const ctx: LowerCtx = {
      inputs: eqn.inputs.map(nameOf),
      out,
      node: (op: string, inputs: readonly string[], outputs: readonly string[], attrs?: Record<string, AttrValue>) => {
        const name = `${nodeBase}${sub++ ? `_${sub - 1}` : ''}`;
        nodes.push({ op, inputs, outputs, name, attrs });
        origins.set(name, { prim: eqn.prim.name, eqnIndex: k, signature });
      },
      temp: (hint) => claim(`t${tempCount++}_${hint}`),
      int64s: (values) => {
        const data = new BigInt64Array(values.map((v) => BigInt(v)));
        return addInit('int64', [values.length], data, `i64:${values.join(',')}`);
      },
      scalar: (value, dtype) => {
        const data = typedArrayFor(dtype, 1);
        if (data instanceof BigInt64Array) data[0] = BigInt(value);
        else data[0] = value;
        return addInit(dtype, [], data, `s:${dtype}:${value}`);
      },
      tensor: (dtype, dims, data, key) => addInit(dtype, dims, data, key === undefined ? undefined : `t:${key}`),
      inputView: (i, dims, dtype) => viewOf(eqn.inputs[i]!, dims, dtype),
      orderedScatter: opts.orderedScatter ?? true,
    };
    eqn.prim.lower(ctx, eqn);
  });

  for (const o of graph.outputs) {
    const src = nameOf(o.v);
    if (src !== o.name) {
      claim(o.name);
      nodes.push({ op: 'Identity', inputs: [src], outputs: [o.name], name: `output_${o.name}` });
    }
  }

  const model: OnnxModel = {
    opset: OPSET,
    nodes,
    initializers,
    inputs: graph.inputs
      .filter((i) => !resident.has(i.name))
      .map((i): OnnxValueInfo => ({ name: i.name, dtype: i.v.dtype, dims: i.v.shape as number[] }))
      .concat(views),
    outputs: graph.outputs.map((o) => ({ name: o.name, dtype: o.v.dtype, dims: o.v.shape as number[] })),
  };
  return { model, origins };
}
