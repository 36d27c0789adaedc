import { afterAll, expect, test } from 'bun:test';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hostTensor, type HostTensor } from '../ir/host.ts';
import { bf16BitsToNumber, f16BitsToNumber } from './half.ts';
import {
  bf16ToF32, castHostTensor, checkShape, encodeSafetensors, f16ToF32, f32ToBf16, f32ToF16, openCheckpoint,
  openSafetensors, readAll, writeSafetensors,
} from './safetensors.ts';

const dir = mkdtempSync(tmpdir() + '/st-');
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let fileNo = 0;
const tmp = (name = 'f.safetensors'): string => join(dir, `${fileNo++}-${name}`);

/** A raw safetensors image from a header (object or literal JSON text) and data bytes. */
function raw(header: unknown, data: Uint8Array | number = 0, headerLen?: number): Uint8Array {
  const json = new TextEncoder().encode(typeof header === 'string' ? header : JSON.stringify(header));
  const body = typeof data === 'number' ? new Uint8Array(data) : data;
  const out = new Uint8Array(8 + json.length + body.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerLen ?? json.length), true);
  out.set(json, 8);
  out.set(body, 8 + json.length);
  return out;
}

function writeRaw(bytes: Uint8Array): string {
  const p = tmp();
  writeFileSync(p, bytes);
  return p;
}

async function openError(p: string): Promise<string> {
  try {
    const f = await openSafetensors(p);
    await f.close();
  } catch (e) {
    return (e as Error).message;
  }
  throw new Error('expected openSafetensors to fail');
}

const u16 = (...xs: number[]): Uint16Array => Uint16Array.from(xs);
const f32bits = (x: number): number => new Uint32Array(Float32Array.of(x).buffer)[0]!;

// ---------------------------------------------------------------- half precision

test('f16: known bit patterns decode exactly', () => {
  const cases: [number, number][] = [
    [0x3c00, 1], [0xbc00, -1], [0x4000, 2], [0x3555, 0.333251953125], [0x7bff, 65504], [0xfbff, -65504],
    [0x0001, 2 ** -24], [0x03ff, 2 ** -14 - 2 ** -24], [0x0400, 2 ** -14], [0x0000, 0],
    [0x7c00, Infinity], [0xfc00, -Infinity],
  ];
  for (const [bits, value] of cases) expect(f16BitsToNumber(bits)).toBe(value);
  expect(Object.is(f16BitsToNumber(0x8000), -0)).toBe(true);
  expect(f16BitsToNumber(0x7e00)).toBeNaN();
  expect(f16BitsToNumber(0xfd01)).toBeNaN();
  // nan payload and sign survive decoding
  expect(new Uint32Array(f16ToF32(u16(0xfd01)).buffer)[0]).toBe(0xffa02000);
});

test('f16: every pattern decodes to the formula value and re-encodes to itself', () => {
  const all = new Uint16Array(65536).map((_, i) => i);
  const dec = f16ToF32(all);
  const enc = f32ToF16(dec);
  for (let h = 0; h < 65536; h++) {
    const s = h & 0x8000 ? -1 : 1;
    const e = (h >> 10) & 0x1f;
    const m = h & 0x3ff;
    const want = e === 31 ? (m ? NaN : s * Infinity) : e === 0 ? s * m * 2 ** -24 : s * (1 + m / 1024) * 2 ** (e - 15);
    if (!Object.is(dec[h], want)) throw new Error(`f16 0x${h.toString(16)}: got ${dec[h]}, want ${want}`);
    const isNan = e === 31 && m !== 0;
    if (isNan ? (enc[h]! & 0x7fff) <= 0x7c00 : enc[h] !== h) throw new Error(`re-encode 0x${h.toString(16)} -> 0x${enc[h]!.toString(16)}`);
  }
});

test('f32ToF16: known encodings, round to nearest even, overflow, subnormals', () => {
  const cases: [number, number][] = [
    [1, 0x3c00], [-2, 0xc000], [65504, 0x7bff], [65519, 0x7bff], [65520, 0x7c00], [1e9, 0x7c00], [-1e9, 0xfc00],
    [Infinity, 0x7c00], [-Infinity, 0xfc00], [0, 0], [-0, 0x8000],
    [2 ** -24, 0x0001], [2 ** -14, 0x0400], [2 ** -25, 0x0000], [-(2 ** -25), 0x8000], [2 ** -25 * 1.5, 0x0001],
    [3 * 2 ** -25, 0x0002], [5 * 2 ** -25, 0x0002], [1e-10, 0], [2 ** -14 - 2 ** -25, 0x0400],
    [1 + 2 ** -11, 0x3c00], [1 + 3 * 2 ** -11, 0x3c02], [1 + 2 ** -11 + 2 ** -20, 0x3c01], [0.1, 0x2e66],
  ];
  const got = f32ToF16(cases.map(([v]) => v));
  cases.forEach(([v, bits], i) => expect([v, got[i]]).toEqual([v, bits]));
  const nan = f32ToF16([NaN])[0]!;
  expect(nan & 0x7c00).toBe(0x7c00);
  expect(nan & 0x3ff).not.toBe(0);
});

test.skipIf(typeof Math.f16round !== 'function')('f32ToF16 agrees with Math.f16round on random float32s', () => {
  const n = 200_000;
  const bits = new Uint32Array(n);
  let s = 12345;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    // Bias exponents into and around the float16 range so subnormal/overflow paths get exercised.
    const exp = 96 + ((s >>> 8) % 56);
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    bits[i] = ((s & 0x80000000) | (exp << 23) | (s & 0x7fffff)) >>> 0;
  }
  const x = new Float32Array(bits.buffer);
  const back = f16ToF32(f32ToF16(x));
  for (let i = 0; i < n; i++) {
    if (!Object.is(back[i], Math.f16round(x[i]!))) throw new Error(`${x[i]}: got ${back[i]}, want ${Math.f16round(x[i]!)}`);
  }
});

test('bf16: known bit patterns both ways, rounding to nearest even', () => {
  expect(bf16BitsToNumber(0x3f80)).toBe(1);
  expect(bf16BitsToNumber(0xc000)).toBe(-2);
  expect(bf16BitsToNumber(0x7f80)).toBe(Infinity);
  expect(bf16BitsToNumber(0xff80)).toBe(-Infinity);
  expect(Object.is(bf16BitsToNumber(0x8000), -0)).toBe(true);
  expect(bf16BitsToNumber(0x7fc0)).toBeNaN();
  expect(bf16BitsToNumber(0x0001)).toBe(2 ** -133); // subnormal
  expect(bf16BitsToNumber(0x7f7f)).toBe(3.3895313892515355e38); // max finite
  const cases: [number, number][] = [
    [1, 0x3f80], [-0, 0x8000], [Infinity, 0x7f80], [-Infinity, 0xff80], [3.140625, 0x4049],
    [1 + 2 ** -8, 0x3f80], [1 + 3 * 2 ** -8, 0x3f82], [1 + 2 ** -8 + 2 ** -20, 0x3f81],
    [3.4e38, 0x7f80], [2 ** -133, 0x0001], [65504, 0x4780],
  ];
  const got = f32ToBf16(cases.map(([v]) => v));
  cases.forEach(([v, bits], i) => expect([v, got[i]]).toEqual([v, bits]));
  const nan = f32ToBf16(Float32Array.of(NaN))[0]!;
  expect(nan & 0x7f80).toBe(0x7f80);
  expect(nan & 0x7f).not.toBe(0);
  // A signalling nan whose payload lives only in the low 16 bits must stay nan.
  const snan = new Float32Array(Uint32Array.of(0x7f800001).buffer);
  expect(bf16ToF32(f32ToBf16(snan))[0]).toBeNaN();
});

test('bf16: random float32s round to the nearer neighbour, ties to even', () => {
  let s = 7;
  const n = 50_000;
  const x = new Float32Array(n);
  const xb = new Uint32Array(x.buffer);
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    xb[i] = (s & 0xff7fffff) >>> 0; // no inf/nan exponents
  }
  const got = f32ToBf16(x);
  for (let i = 0; i < n; i++) {
    const lo = xb[i]! >>> 16;
    const rem = xb[i]! & 0xffff;
    const want = rem > 0x8000 || (rem === 0x8000 && (lo & 1)) ? lo + 1 : lo;
    if (got[i] !== want) throw new Error(`0x${xb[i]!.toString(16)}: got 0x${got[i]!.toString(16)}`);
  }
});

// ---------------------------------------------------------------- round trips

function sampleTensors(): Map<string, HostTensor> {
  return new Map<string, HostTensor>([
    ['f64', hostTensor('float64', [2, 2], [1.5, -2.25, 1e300, -0])],
    ['f32', hostTensor('float32', [3], [0.1, -1, 3.5e38])],
    ['f16', hostTensor('float16', [2], u16(0x3c00, 0xfc00))],
    ['bf16', hostTensor('bfloat16', [1, 2], u16(0x3f80, 0xc000))],
    ['i64', hostTensor('int64', [2], BigInt64Array.of(-(2n ** 62n), 123456789012345n))],
    ['i32', hostTensor('int32', [2], [-2147483648, 7])],
    ['i8', hostTensor('int8', [3], [-128, 0, 127])],
    ['u8', hostTensor('uint8', [2], [0, 255])],
    ['bool', hostTensor('bool', [3], [1, 0, 1])],
    ['scalar', hostTensor('float32', [], [42])],
    ['empty', hostTensor('int32', [0, 4])],
  ]);
}

test('round trip of every dtype through a file, matching encodeSafetensors byte for byte', async () => {
  const tensors = sampleTensors();
  const p = tmp();
  await writeSafetensors(p, tensors, { format: 'pt', note: 'ünïcode' });
  expect(new Uint8Array(readFileSync(p))).toEqual(encodeSafetensors(tensors, { format: 'pt', note: 'ünïcode' }));
  const f = await openSafetensors(p);
  expect(f.names).toEqual([...tensors.keys()].sort());
  expect(f.metadata).toEqual({ format: 'pt', note: 'ünïcode' });
  for (const [name, t] of tensors) {
    const info = f.info(name);
    expect([info.dtype, info.shape, info.byteLength]).toEqual([t.dtype, t.shape, t.data.byteLength]);
    const r = await f.read(name);
    expect(r.dtype).toBe(t.dtype);
    expect(r.shape).toEqual(t.shape);
    expect(r.data.constructor).toBe(t.data.constructor);
    expect(r.data).toEqual(t.data);
  }
  await f.close();
  expect(readdirSync(dir).filter((n) => n.includes('.tmp-'))).toEqual([]);
});

test('writer: header is sorted, space-padded to a multiple of 8, offsets contiguous', () => {
  const img = encodeSafetensors({ b: hostTensor('uint8', [3], [1, 2, 3]), a: hostTensor('float32', [1], [1]) });
  const n = Number(new DataView(img.buffer).getBigUint64(0, true));
  expect(n % 8).toBe(0);
  const text = new TextDecoder().decode(img.subarray(8, 8 + n));
  expect(text).toBe('{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"U8","shape":[3],"data_offsets":[4,7]}}'.padEnd(n, ' '));
  expect(img.length).toBe(8 + n + 7);
  expect([...img.subarray(8 + n + 4)]).toEqual([1, 2, 3]);
});

test('writer: overwrites atomically and rejects malformed tensors without leaving files', async () => {
  const p = tmp();
  await writeSafetensors(p, { x: hostTensor('int8', [1], [1]) });
  await writeSafetensors(p, new Map([['y', hostTensor('int8', [2], [2, 3])]]));
  expect((await readAll(p)).get('y')?.data).toEqual(Int8Array.of(2, 3));
  const bad = { dtype: 'float32', shape: [3], data: new Float32Array(2) } as const;
  await expect(writeSafetensors(p, { bad })).rejects.toThrow('tensor "bad": data has 2 elements, expected 3 for shape [3]');
  const wrongType = { dtype: 'float16', shape: [1], data: new Float32Array(1) } as const;
  expect(() => encodeSafetensors({ w: wrongType })).toThrow('float16 data must be a Uint16Array, found Float32Array');
  expect(readdirSync(dir).filter((n) => n.includes('.tmp-'))).toEqual([]);
  expect((await readAll(p)).has('y')).toBe(true);
});

test('read(name, {as}) converts to float32 (and castHostTensor between dtypes)', async () => {
  const p = tmp();
  await writeSafetensors(p, sampleTensors());
  const f = await openSafetensors(p);
  const as = async (name: string): Promise<number[]> => {
    const t = await f.read(name, { as: 'float32' });
    expect(t.dtype).toBe('float32');
    expect(t.data).toBeInstanceOf(Float32Array);
    return [...(t.data as Float32Array)];
  };
  expect(await as('f16')).toEqual([1, -Infinity]);
  expect(await as('bf16')).toEqual([1, -2]);
  expect(await as('f64')).toEqual([1.5, -2.25, Infinity, -0]);
  expect(await as('i64')).toEqual([-(2 ** 62), Math.fround(123456789012345)]);
  expect(await as('i32')).toEqual([-2147483648, 7]);
  expect(await as('bool')).toEqual([1, 0, 1]);
  expect((await f.read('f32', { as: 'bfloat16' })).data).toEqual(f32ToBf16([0.1, -1, 3.5e38]));
  expect((await f.read('i8', { as: 'int64' })).data).toEqual(BigInt64Array.of(-128n, 0n, 127n));
  await expect(f.read('i32', { as: 'int8' })).rejects.toThrow('value -2147483648 at index 0 does not fit int8');
  await expect(f.read('f32', { as: 'int32' })).rejects.toThrow('cannot convert float32 to int32');
  await f.close();
  expect(castHostTensor(hostTensor('uint8', [2], [0, 9]), 'bool').data).toEqual(Uint8Array.of(0, 1));
});

// ---------------------------------------------------------------- real file

const stories = join(import.meta.dir, '..', '..', '..', 'shared', 'models', 'stories260k', 'model.safetensors');
if (!existsSync(stories)) console.warn(`skipping stories260k test: ${stories} not found`);

test.skipIf(!existsSync(stories))('reads ../shared/models/stories260k/model.safetensors (skipped when ../shared is absent)', async () => {
  const f = await openSafetensors(stories);
  expect(f.names.length).toBe(47);
  expect(f.names.every((n) => f.info(n).dtype === 'float32')).toBe(true);
  checkShape(f, 'model.embed_tokens.weight', [512, 64]);
  const total = f.names.reduce((s, n) => s + f.info(n).byteLength, 0);
  expect(total).toBeLessThan(statSync(stories).size);
  const emb = await f.read('model.embed_tokens.weight');
  expect(emb.shape).toEqual([512, 64]);
  expect((emb.data as Float32Array).every(Number.isFinite)).toBe(true);
  expect((emb.data as Float32Array).some((v) => v !== 0)).toBe(true);
  await f.close();
  const all = await readAll(join(stories, '..'));
  expect(all.size).toBe(47);
  expect(all.get('model.embed_tokens.weight')?.data).toEqual(emb.data);
});

// ---------------------------------------------------------------- sharded checkpoints

async function writeSharded(): Promise<string> {
  const d = mkdtempSync(join(dir, 'ckpt-'));
  await writeSafetensors(join(d, 'model-00001-of-00002.safetensors'), {
    'a.weight': hostTensor('float32', [2, 2], [1, 2, 3, 4]),
    'b.bias': hostTensor('float16', [2], u16(0x3c00, 0x4000)),
  }, { format: 'pt' });
  await writeSafetensors(join(d, 'model-00002-of-00002.safetensors'), {
    'c.weight': hostTensor('int32', [3], [7, 8, 9]),
  }, { format: 'pt' });
  const index = {
    metadata: { total_size: 32 },
    weight_map: {
      'a.weight': 'model-00001-of-00002.safetensors',
      'b.bias': 'model-00001-of-00002.safetensors',
      'c.weight': 'model-00002-of-00002.safetensors',
    },
  };
  writeFileSync(join(d, 'model.safetensors.index.json'), JSON.stringify(index));
  return d;
}

test('sharded checkpoint: directory with model.safetensors.index.json', async () => {
  const d = await writeSharded();
  const ck = await openCheckpoint(d);
  expect(ck.names).toEqual(['a.weight', 'b.bias', 'c.weight']);
  expect(ck.files.length).toBe(2);
  expect(ck.metadata).toEqual({ format: 'pt', total_size: '32' });
  expect(ck.info('c.weight')).toEqual({
    dtype: 'int32', shape: [3], byteLength: 12, file: join(d, 'model-00002-of-00002.safetensors'),
  });
  expect((await ck.read('b.bias', { as: 'float32' })).data).toEqual(Float32Array.of(1, 2));
  expect((await ck.read('c.weight')).data).toEqual(Int32Array.of(7, 8, 9));
  expect(() => checkShape(ck, 'a.weight', [4])).toThrow(
    `${join(d, 'model-00001-of-00002.safetensors')}: tensor a.weight has shape [2,2], expected [4]`,
  );
  expect(() => ck.info('a.weights')).toThrow('similar names: "a.weight"');
  await ck.close();
  const all = await readAll(join(d, 'model.safetensors.index.json'), { as: 'float32', filter: (n) => n !== 'b.bias' });
  expect([...all.keys()]).toEqual(['a.weight', 'c.weight']);
  expect(all.get('c.weight')?.data).toEqual(Float32Array.of(7, 8, 9));
});

test('checkpoint: shard file missing for the index', async () => {
  const d = await writeSharded();
  rmSync(join(d, 'model-00002-of-00002.safetensors'));
  await expect(openCheckpoint(d)).rejects.toThrow(
    `${join(d, 'model.safetensors.index.json')}: shard file missing in ${d}: "model-00002-of-00002.safetensors" (1 tensors, e.g. "c.weight")`,
  );
});

test('checkpoint: index naming a tensor its shard lacks; directory without weights', async () => {
  const d = await writeSharded();
  const idx = join(d, 'model.safetensors.index.json');
  writeFileSync(idx, JSON.stringify({ weight_map: { 'zz': 'model-00002-of-00002.safetensors' } }));
  await expect(openCheckpoint(d)).rejects.toThrow('weight_map puts tensor "zz" in "model-00002-of-00002.safetensors"');
  const empty = mkdtempSync(join(dir, 'empty-'));
  await expect(openCheckpoint(empty)).rejects.toThrow('expected model.safetensors or model.safetensors.index.json');
  await expect(openCheckpoint(join(dir, 'nope'))).rejects.toThrow('no such checkpoint file or directory');
});

// ---------------------------------------------------------------- reader errors

test('error: truncated file (data_offsets beyond the file size)', async () => {
  const p = tmp();
  await writeSafetensors(p, { w: hostTensor('float32', [4], [1, 2, 3, 4]) });
  truncateSync(p, statSync(p).size - 3);
  const msg = await openError(p);
  expect(msg).toStartWith(`${p}: truncated file: tensor "w" ends at data offset 16 (byte `);
  expect(msg).toEndWith('of the file), but the data buffer has only 13 bytes (file size ' + statSync(p).size + ')');
});

test('error: header length larger than the file', async () => {
  const p = writeRaw(raw({}, 0, 1000));
  expect(await openError(p)).toBe(
    `${p}: header length 1000 bytes is larger than the file: expected at most 2 (file size 10 minus the 8-byte length); not a safetensors file, or truncated`,
  );
  const tiny = writeRaw(Uint8Array.of(1, 2, 3));
  expect(await openError(tiny)).toContain('file is 3 bytes, expected at least 8');
});

test('error: invalid JSON header', async () => {
  const p = writeRaw(raw('{"w": {"dtype": "F32",'));
  expect(await openError(p)).toStartWith(`${p}: invalid JSON header (22 bytes, starting "{\\"w\\": {\\"dtype\\": \\"F32\\",")`);
  const arr = writeRaw(raw('[1,2]'));
  expect(await openError(arr)).toContain('invalid JSON header: expected an object');
});

test('error: data_offsets not matching dtype x shape', async () => {
  const p = writeRaw(raw({ w: { dtype: 'F16', shape: [2, 3], data_offsets: [0, 10] } }, 12));
  expect(await openError(p)).toBe(`${p}: tensor "w": data_offsets [0,10] span 10 bytes, expected 12 bytes for F16 [2,3]`);
});

test('error: unsupported dtype names the tensor and the dtype', async () => {
  const p = writeRaw(raw({ q: { dtype: 'F8_E4M3', shape: [1], data_offsets: [0, 1] } }, 1));
  expect(await openError(p)).toBe(
    `${p}: tensor "q" has unsupported dtype "F8_E4M3" (supported: F64, F32, F16, BF16, I64, I32, I8, U8, U16, BOOL)`,
  );
});

test('overlapping and out-of-order data_offsets are accepted', async () => {
  const data = new Uint8Array(new Float32Array([1, 2, 3]).buffer);
  const p = writeRaw(raw({
    __metadata__: { k: 'v' },
    late: { dtype: 'F32', shape: [2], data_offsets: [4, 12] },
    early: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
    alias: { dtype: 'I32', shape: [1], data_offsets: [4, 8] },
  }, data));
  const f = await openSafetensors(p);
  expect(f.names).toEqual(['late', 'early', 'alias']);
  expect((await f.read('late')).data).toEqual(Float32Array.of(2, 3));
  expect((await f.read('early')).data).toEqual(Float32Array.of(1, 2));
  expect((await f.read('alias')).data).toEqual(Int32Array.of(f32bits(2) | 0));
  await f.close();
  await expect(f.read('late')).rejects.toThrow('file is closed');
});

test('error: missing tensor lists similar names', async () => {
  const p = tmp();
  const t = hostTensor('uint8', [1], [0]);
  await writeSafetensors(p, {
    'model.layers.0.mlp.up_proj.weight': t, 'model.layers.0.mlp.down_proj.weight': t, 'model.norm.weight': t, 'lm_head.weight': t,
  });
  const f = await openSafetensors(p);
  expect(() => f.info('model.layers.0.mlp.up_proj.weigth')).toThrow(
    `${p}: no tensor named "model.layers.0.mlp.up_proj.weigth" among 4 tensors; similar names: "model.layers.0.mlp.up_proj.weight", "model.layers.0.mlp.down_proj.weight"`,
  );
  await expect(f.read('x')).rejects.toThrow(`${p}: no tensor named "x" among 4 tensors; similar names: `);
  expect(() => checkShape(f, 'model.norm.weight', [64])).toThrow(`${p}: tensor model.norm.weight has shape [1], expected [64]`);
  expect(checkShape(f, 'model.norm.weight', [1]).dtype).toBe('uint8');
  await f.close();
});

test('metadata must map strings to strings', async () => {
  const p = writeRaw(raw({ __metadata__: { n: 3 } }));
  expect(await openError(p)).toBe(`${p}: __metadata__["n"] must be a string, found 3`);
});

