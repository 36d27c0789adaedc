/** Every primitive's JVP and VJP against central finite differences (float64), including broadcasting. */
import { describe, expect, test } from 'bun:test';
import { f32ToBf16, f32ToF16 } from '../core/io/half.ts';
import * as op from '../core/ops/api.ts';
import { gradTable, type GradCase } from './gradcheck.ts';

const P = { kind: 'positive' as const };

/** A [5, 4] weight held in half precision (a constant: the storage is frozen, only x is differentiated). */
const HALF_W = Float32Array.from({ length: 20 }, (_, i) => Math.sin(1.7 * i + 0.3));
const halfWeight = (like: Parameters<typeof op.constant>[0], format: op.HalfFormat) =>
  op.widen(format === 'float16' ? op.constant(like, f32ToF16(HALF_W), [5, 4], 'float16') : op.constant(like, f32ToBf16(HALF_W), [5, 4], 'uint16'), format);

const PRIMITIVE_CASES: GradCase[] = [
  { name: 'add', inputs: [{ shape: [2, 3] }, { shape: [2, 3] }], fn: op.add },
  { name: 'add broadcast [3,1,4]+[2,1]', inputs: [{ shape: [3, 1, 4] }, { shape: [2, 1] }], fn: op.add },
  { name: 'sub broadcast [2,3]-[3]', inputs: [{ shape: [2, 3] }, { shape: [3] }], fn: op.sub },
  { name: 'mul broadcast [4,1]*[1,5]', inputs: [{ shape: [4, 1] }, { shape: [1, 5] }], fn: op.mul },
  { name: 'mul scalar operand', inputs: [{ shape: [3, 2] }], fn: (x) => op.mul(x, 2.5) },
  { name: 'div broadcast [2,3]/[2,1]', inputs: [{ shape: [2, 3] }, { shape: [2, 1], ...P }], fn: op.div },
  { name: 'pow', inputs: [{ shape: [2, 3], ...P }, { shape: [2, 3] }], fn: op.pow },
  { name: 'pow broadcast exponent', inputs: [{ shape: [2, 3], ...P }, { shape: [] }], fn: op.pow },
  { name: 'maximum broadcast', inputs: [{ shape: [3, 4] }, { shape: [4] }], fn: op.maximum },
  { name: 'where broadcast', inputs: [{ shape: [3, 1], kind: 'bool' }, { shape: [3, 4] }, { shape: [4] }], fn: (c, a, b) => op.where(c!, a!, b!) },
  { name: 'neg', inputs: [{ shape: [5] }], fn: op.neg },
  { name: 'exp', inputs: [{ shape: [2, 3] }], fn: op.exp },
  { name: 'log', inputs: [{ shape: [2, 3], ...P }], fn: op.log },
  { name: 'sqrt', inputs: [{ shape: [2, 3], ...P }], fn: op.sqrt },
  { name: 'rsqrt', inputs: [{ shape: [2, 3], ...P }], fn: op.rsqrt },
  { name: 'tanh', inputs: [{ shape: [2, 3] }], fn: op.tanh },
  { name: 'sigmoid', inputs: [{ shape: [2, 3] }], fn: op.sigmoid },
  { name: 'silu', inputs: [{ shape: [2, 3] }], fn: op.silu },
  { name: 'rms_norm', inputs: [{ shape: [2, 3, 8] }, { shape: [8] }], fn: (x, w) => op.rmsNorm(x!, w!, 1e-5) },
  { name: 'erf', inputs: [{ shape: [2, 3] }], fn: op.erf, dtype: 'float32' },
  { name: 'sin', inputs: [{ shape: [2, 3] }], fn: op.sin },
  { name: 'cos', inputs: [{ shape: [2, 3] }], fn: op.cos },
  { name: 'matmul 2d', inputs: [{ shape: [3, 4] }, { shape: [4, 5] }], fn: (a, b) => op.matmul(a!, b!) },
  { name: 'matmul batched', inputs: [{ shape: [2, 3, 4] }, { shape: [2, 4, 5] }], fn: (a, b) => op.matmul(a!, b!) },
  { name: 'matmul batch @ shared weight', inputs: [{ shape: [2, 3, 4] }, { shape: [4, 5] }], fn: (a, b) => op.matmul(a!, b!) },
  { name: 'matmul broadcast batch', inputs: [{ shape: [2, 1, 3, 4] }, { shape: [3, 4, 5] }], fn: (a, b) => op.matmul(a!, b!) },
  { name: 'softmax', inputs: [{ shape: [3, 7] }], fn: (x) => op.softmax(x, 1) },
  { name: 'softmax axis 0', inputs: [{ shape: [4, 3] }], fn: (x) => op.softmax(x, 0) },
  { name: 'matmul 2d transposed b (Gemm)', inputs: [{ shape: [3, 4] }, { shape: [5, 4] }], fn: (a, b) => op.matmul(a!, b!, { tb: true }) },
  { name: 'matmul 2d transposed a and b', inputs: [{ shape: [4, 3] }, { shape: [5, 4] }], fn: (a, b) => op.matmul(a!, b!, { ta: true, tb: true }) },
  { name: 'matmul batch @ shared transposed weight', inputs: [{ shape: [2, 3, 4] }, { shape: [5, 4] }], fn: (a, b) => op.matmul(a!, b!, { tb: true }) },
  { name: 'matmul batched, both transposed', inputs: [{ shape: [2, 4, 3] }, { shape: [2, 5, 4] }], fn: (a, b) => op.matmul(a!, b!, { ta: true, tb: true }) },
  { name: 'matmul broadcast batch, transposed a', inputs: [{ shape: [2, 1, 4, 3] }, { shape: [3, 4, 5] }], fn: (a, b) => op.matmul(a!, b!, { ta: true }) },
  { name: 'reduce_sum axes', inputs: [{ shape: [2, 3, 4] }], fn: (x) => op.sum(x, [0, 2]) },
  { name: 'reduce_sum keepdims', inputs: [{ shape: [2, 3, 4] }], fn: (x) => op.sum(x, -1, true) },
  { name: 'reduce_max', inputs: [{ shape: [3, 5] }], fn: (x) => op.max(x, 1) },
  { name: 'reduce_max keepdims', inputs: [{ shape: [3, 5] }], fn: (x) => op.max(x, 0, true) },
  { name: 'reshape', inputs: [{ shape: [2, 6] }], fn: (x) => op.reshape(x, [3, 2, 2]) },
  { name: 'transpose', inputs: [{ shape: [2, 3, 4] }], fn: (x) => op.transpose(x, [2, 0, 1]) },
  { name: 'broadcast_to', inputs: [{ shape: [3, 1] }], fn: (x) => op.broadcastTo(x, [2, 3, 4]) },
  { name: 'slice', inputs: [{ shape: [3, 6] }], fn: (x) => op.slice(x, 1, 1, 4) },
  { name: 'pad', inputs: [{ shape: [3, 2] }], fn: (x) => op.pad(x, 0, 1, 2) },
  { name: 'concat', inputs: [{ shape: [2, 3] }, { shape: [2, 1] }, { shape: [2, 2] }], fn: (...xs) => op.concat(xs, 1) },
  { name: 'gather rows', inputs: [{ shape: [5, 3] }, { shape: [2, 4], kind: 'int', values: [0, 4, 4, 1, 2, 2, 3, 0] }], fn: op.gather },
  { name: 'scatter_add_rows', inputs: [{ shape: [5, 3] }, { shape: [4], kind: 'int', values: [1, 3, 1, 0] }, { shape: [4, 3] }], fn: (b, i, u) => op.scatterAddRows(b!, i!, u!) },
  { name: 'scatter_add_rows, 6 rows, repeated and negative ids', inputs: [{ shape: [6, 2] }, { shape: [2, 3], kind: 'int', values: [5, 0, -1, 2, 5, 3] }, { shape: [2, 3, 2] }], fn: (b, i, u) => op.scatterAddRows(b!, i!, u!) },
  { name: 'take_along_axis', inputs: [{ shape: [3, 6] }, { shape: [3, 2], kind: 'int', range: 6 }], fn: (x, i) => op.takeAlongAxis(x!, i!, 1) },
  // One index per row: the transpose is a one-hot select (core/ops/indexing.ts); negative indices count from the end.
  { name: 'take_along_axis, one index per column of axis 0, negative ones', inputs: [{ shape: [4, 3] }, { shape: [1, 3], kind: 'int', values: [0, 3, -2] }], fn: (x, i) => op.takeAlongAxis(x!, i!, 0) },
  { name: 'take_along_axis, one index per row of the last axis', inputs: [{ shape: [2, 3, 5] }, { shape: [2, 3, 1], kind: 'int', values: [4, 0, -1, 2, 2, 1] }], fn: (x, i) => op.takeAlongAxis(x!, i!, 2) },
  { name: 'scatter_add_along_axis', inputs: [{ shape: [3, 6] }, { shape: [3, 2], kind: 'int', range: 6 }, { shape: [3, 2] }], fn: (b, i, u) => op.scatterAddAlongAxis(b!, i!, u!, 1) },
  // op.matmul of a widened weight records widened_matmul (core/ops/widen.ts); float32, the dtype it widens to.
  { name: 'widened_matmul float16 weight, transposed (a linear layer)', inputs: [{ shape: [2, 3, 4] }], dtype: 'float32', fn: (x) => op.matmul(x!, halfWeight(x!, 'float16'), { tb: true }) },
  { name: 'widened_matmul bfloat16 bits, not transposed', inputs: [{ shape: [3, 5] }], dtype: 'float32', fn: (x) => op.matmul(x!, halfWeight(x!, 'bfloat16')) },
  { name: 'gather of widened rows', inputs: [{ shape: [2, 5] }], dtype: 'float32', fn: (x) => op.mul(op.gather(halfWeight(x!, 'bfloat16'), op.constant(x!, BigInt64Array.of(4n, 0n), [2], 'int64')), op.slice(x!, 1, 0, 4)) },
  { name: 'cast f64 -> f32 -> f64', inputs: [{ shape: [4] }], fn: (x) => op.cast(op.mul(op.cast(x, 'float32'), 3), 'float64'), h: 1e-2, tol: 1e-5 },
];

gradTable('primitive derivatives vs finite differences', PRIMITIVE_CASES);
