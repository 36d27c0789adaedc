/** The GGUF writer's pieces without a model: file layout round trip, Q8_0 blocks, the rotary row permutation. */
import { expect, test } from 'bun:test';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeQ8_0, encodeQ8_0, permuteRotaryRows, readGguf, writeGguf, ggufTensorName } from './index.ts';
import { f32, f32s, i32s, str, strings, u32, bool, type GgufMetadata } from './values.ts';
import { encodeTensor } from './quant.ts';

test('a written file reads back: header v3, typed metadata, tensor infos at 32-byte aligned offsets, data', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tuneforge-gguf-'));
  try {
    const md: GgufMetadata = new Map([
      ['general.architecture', str('llama')], ['llama.block_count', u32(5)], ['llama.rope.freq_base', f32(10000)],
      ['tokenizer.ggml.add_bos_token', bool(true)], ['tokenizer.ggml.tokens', strings(['<unk>', '▁the', 'ü'])],
      ['tokenizer.ggml.scores', f32s([0, -1, -2])], ['tokenizer.ggml.token_type', i32s([2, 1, 1])],
    ]);
    const a = Float32Array.from({ length: 6 }, (_, i) => i - 2.5); // 6 floats: 24 bytes, padded to 32
    const b = Float32Array.from({ length: 64 }, (_, i) => Math.sin(i));
    const path = join(dir, 't.gguf');
    const size = await writeGguf(path, md, [
      { name: 'a.weight', dims: [3, 2], type: 'F32', encode: () => encodeTensor(a, 'F32') },
      { name: 'b.weight', dims: [32, 2], type: 'Q8_0', encode: () => encodeTensor(b, 'Q8_0') },
    ]);
    expect(statSync(path).size).toBe(size);
    const file = await readGguf(path);
    expect(file.version).toBe(3);
    expect(Object.fromEntries(file.metadata)).toEqual({
      'general.architecture': 'llama', 'llama.block_count': 5, 'llama.rope.freq_base': 10000, 'tokenizer.ggml.add_bos_token': true,
      'tokenizer.ggml.tokens': ['<unk>', '▁the', 'ü'], 'tokenizer.ggml.scores': [0, -1, -2], 'tokenizer.ggml.token_type': [2, 1, 1],
    });
    const ta = file.tensors.get('a.weight')!, tb = file.tensors.get('b.weight')!;
    expect([ta.offset % 32, tb.offset % 32, tb.offset - ta.offset]).toEqual([0, 0, 32]);
    expect(new Float32Array(file.data('a.weight').slice().buffer)).toEqual(a);
    expect(tb.bytes).toBe(2 * 34);
    expect(size % 32).toBe(0); // the last tensor is padded too
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('Q8_0: scale max|x|/127 as float16, values rounded half away from zero', () => {
  const x = new Float32Array(32);
  x[0] = 127; x[1] = -63.5; x[2] = 0.5; x[3] = -0.49;
  const q = encodeQ8_0(x);
  expect(q.length).toBe(34);
  expect(new DataView(q.buffer).getUint16(0, true)).toBe(0x3c00); // d = 1.0
  expect([...new Int8Array(q.buffer, 2, 4)]).toEqual([127, -64, 1, 0]);
  expect(decodeQ8_0(q).subarray(0, 4)).toEqual(Float32Array.of(127, -64, 1, 0));
  expect([...decodeQ8_0(encodeQ8_0(new Float32Array(32)))].every((v) => v === 0)).toBe(true);
});

test('rotary permutation: per head, HF halves [x0..x3 | y0..y3] become pairs x0 y0 x1 y1 ...', () => {
  // 2 heads of dim 4, 1 column: rows are their own indices.
  expect([...permuteRotaryRows(Float32Array.from({ length: 8 }, (_, i) => i), 2, 1)]).toEqual([0, 2, 1, 3, 4, 6, 5, 7]);
  // Columns move with their row.
  expect([...permuteRotaryRows(Float32Array.of(0, 0, 1, 1, 2, 2, 3, 3), 1, 2)]).toEqual([0, 0, 2, 2, 1, 1, 3, 3]);
  expect(ggufTensorName('model.layers.12.self_attn.o_proj.weight')).toBe('blk.12.attn_output.weight');
  expect(ggufTensorName('model.embed_tokens.weight')).toBe('token_embd.weight');
  expect(() => ggufTensorName('model.layers.0.mlp.experts.0.weight')).toThrow(/no GGUF name/);
});
