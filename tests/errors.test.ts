/** Bad input gets a clear error at graph-building time, not a crash inside onnxruntime. */
import { expect, test } from 'bun:test';
import { compile, definePrimitive, hostTensor, jvp, op, trace, valueAndGrad } from '../core/index.ts';

test('shape mismatch names the op and both shapes', () => {
  expect(() => trace((g) => ({ y: op.matmul(g.input('a', 'float32', [2, 3]), g.input('b', 'float32', [4, 5])) }))).toThrow(
    'matmul(float32[2,3], float32[4,5]): inner dimensions differ: a[2,3] @ b[4,5] (3 vs 4)',
  );
  expect(() => trace((g) => ({ y: op.add(g.input('a', 'float32', [2, 3]), g.input('b', 'float32', [4])) }))).toThrow(
    'add(float32[2,3], float32[4]): shapes [2,3] and [4] do not broadcast',
  );
  expect(() => trace((g) => ({ y: op.reshape(g.input('a', 'float32', ['B', 6]), ['B', 4]) }))).toThrow(
    'cannot reshape [B,6] (6*B elements) to [B,4] (4*B elements)',
  );
});

test('mixed dtypes are refused', () => {
  expect(() => trace((g) => ({ y: op.add(g.input('a', 'float32', [2]), g.input('b', 'float64', [2])) }))).toThrow(
    'dtypes differ (float32 vs float64)',
  );
});

test('gradients of a non-float input are refused', () => {
  const g = trace((g) => {
    const ids = g.input('ids', 'int64', [3]);
    const table = g.input('table', 'float32', [5, 2]);
    return { loss: op.sum(op.gather(table, ids)) };
  });
  expect(() => valueAndGrad(g, { of: 'loss', wrt: ['ids'] })).toThrow("cannot differentiate with respect to 'ids': it is int64, not a float tensor");
  expect(() => valueAndGrad(g, { of: 'loss', wrt: ['nope'] })).toThrow("no input named 'nope'; inputs are ids, table");
  expect(() => jvp(g, { wrt: ['ids'] })).toThrow("cannot take a tangent of 'ids'");
});

test('unknown dtype is refused with the list of known ones', () => {
  expect(() => trace((g) => ({ y: g.input('x', 'float8' as 'float32', [2]) }))).toThrow("input 'x': unknown dtype \"float8\"; expected one of float32");
});

test('missing symbolic dims and bad feeds are reported before running', async () => {
  const g = trace((g) => ({ y: op.exp(g.input('x', 'float32', ['B', 2])) }));
  await expect(compile(g)).rejects.toThrow("symbolic dimension 'B' has no value: pass it in dims");
  const exe = await compile(g, { dims: { B: 3 } });
  await expect(exe.run({ x: hostTensor('float32', [2, 2]) })).rejects.toThrow("input 'x' is float32[2,2], expected float32[3,2]");
  await expect(exe.run({})).rejects.toThrow("missing input 'x' (float32[3,2])");
  await exe.release();
});

test('an onnxruntime rejection names the IR op and shapes behind the failing node', async () => {
  // A deliberately broken primitive whose lowering emits an op that does not exist.
  const broken = definePrimitive<Record<string, never>>({
    name: 'broken',
    infer: (types) => types[0]!,
    lower: (ctx) => ctx.node('NoSuchOp', ctx.inputs, [ctx.out]),
    jvp: () => null,
    vjp: () => [null],
    cost: () => ({ flops: 0, bytes: 0 }),
  });
  const g = trace((g) => {
    const x = g.input('x', 'float32', [2, 3]);
    return { y: x.builder.bind(broken, [op.exp(x)], {}) };
  });
  await expect(compile(g)).rejects.toThrow(/node 'broken_1' comes from equation 1: broken\(float32\[2,3\]\) -> float32\[2,3\]/);
});

test('integer index arithmetic is allowed, float-only ops say so', async () => {
  const g = trace((g) => {
    const t = op.iota(g.input('x', 'float32', [1]), [3, 3], 0);
    return { y: op.sub(op.add(t, 2), op.iota(t, [3, 3], 1)) };
  });
  const exe = await compile(g);
  const y = (await exe.run({ x: hostTensor('float32', [1]) })).y!;
  expect(Array.from(y.data as BigInt64Array, Number)).toEqual([2, 1, 0, 3, 2, 1, 4, 3, 2]);
  await exe.release();
  expect(() => trace((g) => ({ y: op.div(g.input('a', 'int64', [2]), g.input('b', 'int64', [2])) }))).toThrow('operands must be a float tensor, got int64');
});

test('weights beyond the protobuf limit go to an external data file, with the same results', async () => {
  const g = trace((g) => ({ y: op.matmul(g.input('x', 'float32', [2, 64]), g.input('w', 'float32', [64, 64])) }));
  const w = hostTensor('float32', [64, 64], Array.from({ length: 4096 }, (_, i) => Math.sin(i)));
  const x = hostTensor('float32', [2, 64], Array.from({ length: 128 }, (_, i) => Math.cos(i)));
  const inline = await compile(g, { resident: { w } });
  const external = await compile(g, { resident: { w }, externalDataThreshold: 0 });
  const [a, b] = [await inline.run({ x }), await external.run({ x })];
  expect(Array.from(b.y!.data as Float32Array)).toEqual(Array.from(a.y!.data as Float32Array));
  await Promise.all([inline.release(), external.release()]);
});
