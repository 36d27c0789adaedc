/**
 * Writes a GGUF v3 file: header, metadata, tensor infos, padding, then each tensor's data at an aligned offset.
 * Tensor bytes are produced one tensor at a time while writing (`encode`), so a large model is never held encoded
 * in memory all at once; their sizes are known up front from type and shape, which fixes every offset.
 */
import { open } from 'node:fs/promises';
import { ByteWriter, utf8Length } from './bytes.ts';
import { alignUp, GGUF_ALIGNMENT, GGUF_MAGIC, GGUF_VERSION, GgmlType, MAX_TENSOR_NAME_BYTES, tensorBytes, ValueType, type GgmlTypeName } from './format.ts';
import { typeId, type GgufMetadata, type GgufValue } from './values.ts';

export interface GgufTensor {
  /** GGUF name, e.g. `blk.0.attn_q.weight`. */
  readonly name: string;
  /** ggml order: ne[0] (the contiguous axis) first, i.e. the reverse of the row-major shape. */
  readonly dims: readonly number[];
  readonly type: GgmlTypeName;
  /** The tensor's bytes in `type`'s layout; called once, while the file is written. */
  encode(): Uint8Array | Promise<Uint8Array>;
}

function writeValue(w: ByteWriter, v: GgufValue): void {
  switch (v.type) {
    case 'uint32': w.u32(v.value); break;
    case 'int32': w.i32(v.value); break;
    case 'uint64': w.u64(v.value); break;
    case 'float32': w.f32(v.value); break;
    case 'bool': w.u8(v.value ? 1 : 0); break;
    case 'string': w.string(v.value); break;
    case 'array': {
      const of = { string: ValueType.STRING, float32: ValueType.FLOAT32, int32: ValueType.INT32, uint32: ValueType.UINT32 }[v.of];
      w.u32(of);
      w.u64(v.value.length);
      if (v.of === 'string') for (const s of v.value) w.string(s);
      else if (v.of === 'float32') for (let i = 0; i < v.value.length; i++) w.f32(v.value[i]!);
      else if (v.of === 'int32') for (let i = 0; i < v.value.length; i++) w.i32(v.value[i]!);
      else for (let i = 0; i < v.value.length; i++) w.u32(v.value[i]!);
      break;
    }
  }
}

/** Header, metadata and tensor infos (padded to the alignment), plus where each tensor's data goes. */
export function encodeHeader(metadata: GgufMetadata, tensors: readonly GgufTensor[], alignment = GGUF_ALIGNMENT): { header: Uint8Array; sizes: number[] } {
  const problems: string[] = [];
  const seen = new Set<string>();
  for (const t of tensors) {
    if (utf8Length(t.name) > MAX_TENSOR_NAME_BYTES) problems.push(`tensor name '${t.name}' is longer than ${MAX_TENSOR_NAME_BYTES} bytes`);
    if (seen.has(t.name)) problems.push(`tensor '${t.name}' appears twice`);
    seen.add(t.name);
  }
  for (const key of metadata.keys()) if (!/^[\x20-\x7e]+$/.test(key)) problems.push(`metadata key '${key}' is not ASCII`);
  if (problems.length) throw new Error(`gguf: ${problems.join('; ')}`);

  const w = new ByteWriter();
  w.u32(GGUF_MAGIC);
  w.u32(GGUF_VERSION);
  w.u64(tensors.length);
  w.u64(metadata.size);
  for (const [key, value] of metadata) {
    w.string(key);
    w.u32(typeId[value.type]);
    writeValue(w, value);
  }
  const sizes: number[] = [];
  let offset = 0; // relative to the start of the tensor data section
  for (const t of tensors) {
    const size = tensorBytes(t.type, t.dims.reduce((a, b) => a * b, 1));
    sizes.push(size);
    w.string(t.name);
    w.u32(t.dims.length);
    for (const d of t.dims) w.u64(d);
    w.u32(GgmlType[t.type]);
    w.u64(offset);
    offset = alignUp(offset + size, alignment);
  }
  w.pad(alignment);
  return { header: w.result(), sizes };
}

/** Writes `path`; returns its size in bytes. Every tensor, the last included, is padded to the alignment. */
export async function writeGguf(path: string, metadata: GgufMetadata, tensors: readonly GgufTensor[], alignment = GGUF_ALIGNMENT): Promise<number> {
  const { header, sizes } = encodeHeader(metadata, tensors, alignment);
  const file = await open(path, 'w');
  try {
    let position = 0;
    const put = async (b: Uint8Array) => {
      let done = 0;
      while (done < b.length) done += (await file.write(b, done, b.length - done, position + done)).bytesWritten;
      position += b.length;
    };
    await put(header);
    for (let i = 0; i < tensors.length; i++) {
      const t = tensors[i]!;
      const data = await t.encode();
      if (data.length !== sizes[i]) throw new Error(`gguf: tensor ${t.name} encoded to ${data.length} bytes, expected ${sizes[i]} for ${t.type} [${t.dims}]`);
      await put(data);
      const pad = alignUp(data.length, alignment) - data.length;
      if (pad) await put(new Uint8Array(pad));
    }
    return position;
  } finally {
    await file.close();
  }
}
