/**
 * A small GGUF reader: metadata and tensor infos, and one tensor's raw bytes. Used to check what the writer
 * produced (tests, and `export` reporting) without going through llama.cpp.
 */
import { readFile } from 'node:fs/promises';
import { GGUF_ALIGNMENT, GGUF_MAGIC, GgmlType, tensorBytes, ValueType, type GgmlTypeName } from './format.ts';

export type GgufReadValue = number | bigint | boolean | string | GgufReadValue[];

export interface GgufTensorInfo {
  name: string;
  /** ggml order (ne[0] first). */
  dims: number[];
  type: GgmlTypeName;
  /** Absolute offset of the data in the file. */
  offset: number;
  bytes: number;
}

export interface GgufFile {
  version: number;
  metadata: Map<string, GgufReadValue>;
  tensors: Map<string, GgufTensorInfo>;
  /** The tensor's stored bytes. */
  data(name: string): Uint8Array;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

export async function readGguf(path: string): Promise<GgufFile> {
  const buf = new Uint8Array(await readFile(path));
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  let p = 0;
  const u32 = () => { const v = view.getUint32(p, true); p += 4; return v; };
  const u64 = () => { const v = view.getBigUint64(p, true); p += 8; return Number(v); };
  const str = () => { const n = u64(); const s = utf8.decode(buf.subarray(p, p + n)); p += n; return s; };
  const value = (type: number): GgufReadValue => {
    switch (type) {
      case ValueType.UINT8: return view.getUint8(p++);
      case ValueType.INT8: return view.getInt8(p++);
      case ValueType.UINT16: { const v = view.getUint16(p, true); p += 2; return v; }
      case ValueType.INT16: { const v = view.getInt16(p, true); p += 2; return v; }
      case ValueType.UINT32: return u32();
      case ValueType.INT32: { const v = view.getInt32(p, true); p += 4; return v; }
      case ValueType.FLOAT32: { const v = view.getFloat32(p, true); p += 4; return v; }
      case ValueType.BOOL: return view.getUint8(p++) !== 0;
      case ValueType.STRING: return str();
      case ValueType.UINT64: { const v = view.getBigUint64(p, true); p += 8; return v; }
      case ValueType.INT64: { const v = view.getBigInt64(p, true); p += 8; return v; }
      case ValueType.FLOAT64: { const v = view.getFloat64(p, true); p += 8; return v; }
      case ValueType.ARRAY: {
        const of = u32();
        const n = u64();
        const out: GgufReadValue[] = [];
        for (let i = 0; i < n; i++) out.push(value(of));
        return out;
      }
      default: throw new Error(`${path}: unknown metadata value type ${type} at byte ${p}`);
    }
  };
  if (u32() !== GGUF_MAGIC) throw new Error(`${path}: not a GGUF file (bad magic)`);
  const version = u32();
  const nTensors = u64();
  const nKv = u64();
  const metadata = new Map<string, GgufReadValue>();
  for (let i = 0; i < nKv; i++) {
    const key = str();
    metadata.set(key, value(u32()));
  }
  const typeName = new Map(Object.entries(GgmlType).map(([k, v]) => [v as number, k as GgmlTypeName]));
  const infos: Omit<GgufTensorInfo, 'offset'>[] = [];
  const offsets: number[] = [];
  for (let i = 0; i < nTensors; i++) {
    const name = str();
    const dims = Array.from({ length: u32() }, u64);
    const id = u32();
    const type = typeName.get(id);
    if (!type) throw new Error(`${path}: tensor ${name} has ggml type ${id}, which this reader does not know`);
    offsets.push(u64());
    infos.push({ name, dims, type, bytes: tensorBytes(type, dims.reduce((a, b) => a * b, 1)) });
  }
  const alignment = Number(metadata.get('general.alignment') ?? GGUF_ALIGNMENT);
  const dataStart = Math.ceil(p / alignment) * alignment;
  const tensors = new Map(infos.map((t, i) => [t.name, { ...t, offset: dataStart + offsets[i]! }]));
  for (const t of tensors.values()) {
    if (t.offset + t.bytes > buf.length) throw new Error(`${path}: tensor ${t.name} runs past the end of the file`);
  }
  return {
    version, metadata, tensors,
    data(name) {
      const t = tensors.get(name);
      if (!t) throw new Error(`${path}: no tensor ${name}`);
      return buf.subarray(t.offset, t.offset + t.bytes);
    },
  };
}
