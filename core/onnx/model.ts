import { DTYPES, type DType } from '../ir/dtype.ts';
import type { AttrValue } from '../ir/primitive.ts';
import { ProtoWriter } from './protobuf.ts';

/** The parts of ONNX's ModelProto we emit, as plain data. Field numbers follow onnx/onnx.proto. */
export interface OnnxNode {
  op: string;
  inputs: readonly string[];
  outputs: readonly string[];
  name: string;
  attrs?: Record<string, AttrValue>;
}

export interface OnnxInitializer {
  name: string;
  dtype: DType;
  dims: readonly number[];
  /** Little-endian raw bytes; or an external location when the weights live in a separate file. */
  raw?: Uint8Array;
  external?: { location: string; offset: number; length: number };
}

export interface OnnxValueInfo {
  name: string;
  dtype: DType;
  dims: readonly number[];
  /** ONNX dim_param per axis where a model keeps the axis free (an exported model's batch, sequence); `dims` is then ignored there. */
  dimParams?: readonly (string | null)[];
  /**
   * An input view: the caller feeds input `viewOf`'s values again, with these dims (a reshape, free on the host), for a
   * lowering that needs them in another shape on a provider that cannot reshape them (core/onnx/input-views.ts).
   */
  viewOf?: string;
}

export interface OnnxModel {
  opset: number;
  nodes: OnnxNode[];
  initializers: OnnxInitializer[];
  inputs: OnnxValueInfo[];
  outputs: OnnxValueInfo[];
}

// AttributeProto.AttributeType
const ATTR_FLOAT = 1, ATTR_INT = 2, ATTR_STRING = 3, ATTR_FLOATS = 6, ATTR_INTS = 7;

function encodeAttr(name: string, value: AttrValue): ProtoWriter {
  const a = new ProtoWriter().string(1, name);
  if (typeof value === 'number') {
    if (!Number.isInteger(value)) throw new Error(`attribute ${name}: use { float: x } for float values`);
    a.int(3, value).int(20, ATTR_INT);
  } else if (typeof value === 'string') a.string(4, value).int(20, ATTR_STRING);
  else if (Array.isArray(value)) {
    for (const v of value) a.int(8, v);
    a.int(20, ATTR_INTS);
  } else if ('float' in value) a.float(2, value.float).int(20, ATTR_FLOAT);
  else {
    for (const v of value.floats) a.float(7, v);
    a.int(20, ATTR_FLOATS);
  }
  return a;
}

function encodeValueInfo(v: OnnxValueInfo): ProtoWriter {
  const shape = new ProtoWriter();
  v.dims.forEach((d, i) => {
    const param = v.dimParams?.[i];
    shape.message(1, param ? new ProtoWriter().string(2, param) : new ProtoWriter().int(1, d));
  });
  const tensorType = new ProtoWriter().int(1, DTYPES[v.dtype].onnx).message(2, shape);
  return new ProtoWriter().string(1, v.name).message(2, new ProtoWriter().message(1, tensorType));
}

function encodeInitializer(t: OnnxInitializer): ProtoWriter {
  const w = new ProtoWriter();
  for (const d of t.dims) w.int(1, d);
  w.int(2, DTYPES[t.dtype].onnx).string(8, t.name);
  if (t.external) {
    const entry = (k: string, v: string) => new ProtoWriter().string(1, k).string(2, v);
    w.message(13, entry('location', t.external.location));
    w.message(13, entry('offset', String(t.external.offset)));
    w.message(13, entry('length', String(t.external.length)));
    w.int(14, 1); // data_location = EXTERNAL
  } else {
    w.bytes(9, t.raw ?? new Uint8Array(0));
  }
  return w;
}

/** Serialises a model to ONNX protobuf bytes (IR version 8). */
export function encodeModel(m: OnnxModel): Uint8Array {
  const g = new ProtoWriter();
  for (const n of m.nodes) {
    const node = new ProtoWriter();
    for (const i of n.inputs) node.string(1, i);
    for (const o of n.outputs) node.string(2, o);
    node.string(3, n.name).string(4, n.op);
    for (const [k, v] of Object.entries(n.attrs ?? {})) node.message(5, encodeAttr(k, v));
    g.message(1, node);
  }
  g.string(2, 'graph');
  for (const t of m.initializers) g.message(5, encodeInitializer(t));
  for (const i of m.inputs) g.message(11, encodeValueInfo(i));
  for (const o of m.outputs) g.message(12, encodeValueInfo(o));
  const model = new ProtoWriter()
    .int(1, 8)
    .string(2, 'tuneforge')
    .string(3, '0.1.0')
    .message(7, g)
    .message(8, new ProtoWriter().string(1, '').int(2, m.opset));
  return model.finish();
}
