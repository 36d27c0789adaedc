/**
 * Tensor stores (runners/holding.ts `TensorStore`): sessions compiled with the same store share what they hold.
 * A "step" of two batch shapes reads the weight an "update" session wrote and writes the gradient the update reads,
 * in this process and on a sidecar over loopback, where after the first round only the batch crosses.
 */
import { afterAll, describe, expect, test } from 'bun:test';
import { compile, trace, type HostTensor } from '../../core/index.ts';
import { encodeModel } from '../../core/onnx/model.ts';
import * as op from '../../core/ops/api.ts';
import { TensorStore } from '../../runners/holding.ts';
import { ortNodeRunner } from '../../runners/ort-node.ts';
import { ortWebRunner } from '../../runners/ort-web.ts';
import { sidecar } from '../../runners/sidecar.ts';
import { startSidecar, type RunningSidecar } from '../../runners/sidecar-server.ts';
import { LOAD_CONTENT_TYPE, encodeLoadPrefix } from '../../runners/sidecar-protocol.ts';
import type { Runner } from '../../runners/types.ts';
import { BROWSER_RUNNERS, browserRunner } from './browser/driver.ts';

const TOKEN = 'store-test-token-0123456789';
const servers: RunningSidecar[] = [];
afterAll(async () => {
  for (const s of servers.splice(0)) await s.stop().catch(() => {});
  await BROWSER_RUNNERS[0]!.close?.();
});
const serve = async () => {
  const s = await startSidecar({ hostname: '127.0.0.1', port: 0, provider: 'cpu', token: TOKEN });
  servers.push(s);
  return s;
};

const N = 4, LR = 0.1;
const f32 = (shape: number[], values: number[]): HostTensor => ({ dtype: 'float32', shape, data: Float32Array.from(values) });
/** loss = sum(x · w) over the rows of x [B, N]; its gradient g = the column sums of x, held as 'g'. */
const stepGraph = (b: number) => trace((g) => {
  const w = g.input('w', 'float32', [N]), x = g.input('x', 'float32', [b, N]);
  return { loss: op.sum(op.mul(x, w)), g: op.sum(x, 0) };
});
/** new w = w - LR·g, held as 'w'. */
const updateGraph = () => trace((g) => {
  const w = g.input('w', 'float32', [N]), grad = g.input('g', 'float32', [N]);
  return { new_w: op.sub(w, op.mul(grad, LR)), step_norm: op.sum(op.square(grad)) };
});
const batch = (b: number, k: number) => f32([b, N], Array.from({ length: b * N }, (_, i) => ((i * 7 + k * 3) % 5) - 2));

/** The same rounds on the host, in float32. */
function expected(rounds: readonly number[]): { w: Float32Array; losses: number[] } {
  let w = Float32Array.of(0.5, -1, 2, 0.25);
  const losses: number[] = [];
  rounds.forEach((b, k) => {
    const x = batch(b, k).data as Float32Array;
    let loss = 0;
    const g = new Float32Array(N);
    for (let r = 0; r < b; r++) for (let j = 0; j < N; j++) { loss += x[r * N + j]! * w[j]!; g[j] = g[j]! + x[r * N + j]!; }
    losses.push(Math.fround(loss));
    w = w.map((v, j) => Math.fround(v - Math.fround(LR * g[j]!)));
  });
  return { w, losses };
}

const ROUNDS = [2, 3, 2, 3];

async function rounds(runner: Runner | undefined, onRound?: (k: number) => void) {
  const store = new TensorStore();
  const on = runner ? { runner } : {};
  const steps = new Map<number, Awaited<ReturnType<typeof compile>>>();
  for (const b of new Set(ROUNDS)) steps.set(b, await compile(stepGraph(b), { ...on, store, feedback: { g: 'g' } }));
  const update = await compile(updateGraph(), { ...on, store, feedback: { new_w: 'w' } });
  const losses: number[] = [];
  for (const [k, b] of ROUNDS.entries()) {
    // The first round seeds w (a fed input wins and is not stored); the update's new w goes to the store.
    const seed: Record<string, HostTensor> = k === 0 ? { w: f32([N], [0.5, -1, 2, 0.25]) } : {};
    const out = await steps.get(b)!.run({ x: batch(b, k), ...seed });
    expect(Object.keys(out)).toEqual(['loss']); // g is held
    losses.push(Number(out.loss!.data[0]));
    const u = await update.run(seed);
    expect(Object.keys(u)).toEqual(['step_norm']);
    onRound?.(k);
  }
  const w = (await steps.get(2)!.readHeld!('w')).data as Float32Array; // any session of the store reads it
  return { losses, w, release: async () => { for (const e of [...steps.values(), update]) await e.release(); } };
}

describe('a store shared by the sessions of two batch shapes and an update', () => {
  test('in this process: the rounds of the host', async () => {
    const want = expected(ROUNDS);
    const got = await rounds(undefined);
    expect(got.losses).toEqual(want.losses);
    expect([...got.w]).toEqual([...want.w]);
    await got.release();
  });

  test('on onnxruntime-web (wasm): the rounds of the host, within float32 rounding (its sums add in another order)', async () => {
    const want = expected(ROUNDS);
    const got = await rounds(ortWebRunner());
    got.losses.forEach((l, k) => expect(Math.abs(l - want.losses[k]!)).toBeLessThan(1e-6 * Math.max(1, Math.abs(want.losses[k]!))));
    got.w.forEach((w, j) => expect(Math.abs(w - want.w[j]!)).toBeLessThan(1e-6));
    await got.release();
  });

  // In headless Chromium: a store's tensors cross from one session to the next inside onnxruntime-web, on WebGPU
  // as GPU buffers (SwiftShader), with CPU fallback disabled.
  for (const [label, entry, make] of [
    ['wasm (chromium)', BROWSER_RUNNERS[0]!, () => browserRunner('wasm', { numThreads: 2 })],
    ['webgpu (chromium, swiftshader), CPU fallback disabled', BROWSER_RUNNERS[1]!, () => browserRunner('webgpu')],
  ] as const) {
    test(`on onnxruntime-web ${label}: the rounds of the host, within float32 rounding`, async () => {
      const ok = await entry.available();
      if (ok !== true) {
        console.warn(`skipping the store on onnxruntime-web ${label}: ${ok}`);
        return;
      }
      const want = expected(ROUNDS);
      const got = await rounds(make());
      got.losses.forEach((l, k) => expect(Math.abs(l - want.losses[k]!)).toBeLessThan(1e-6 * Math.max(1, Math.abs(want.losses[k]!))));
      got.w.forEach((w, j) => expect(Math.abs(w - want.w[j]!)).toBeLessThan(1e-6));
      await got.release();
    }, 60_000);
  }

  test('on a sidecar: the same bits, only the batch crosses after the first round, and the store goes with its sessions', async () => {
    const s = await serve();
    const runner = sidecar(s.url, { token: TOKEN });
    const sent: number[] = [];
    let last = 0;
    const got = await rounds(runner, () => { sent.push(runner.stats.bytesSent - last); last = runner.stats.bytesSent; });
    const want = expected(ROUNDS);
    expect(got.losses).toEqual(want.losses);
    expect([...got.w]).toEqual([...want.w]);
    // From round 1 on: the batch (b·N floats) and two small frame headers, no weight and no gradient.
    ROUNDS.slice(1).forEach((b, k) => expect(sent[k + 1]! - b * N * 4).toBeLessThan(300));
    expect((await runner.info()).heldBytes).toBe(2 * N * 4); // w and g
    const before = runner.stats.bytesReceived;
    await got.release();
    expect((await runner.info())).toMatchObject({ sessions: 0, heldBytes: 0 });
    expect(runner.stats.bytesReceived - before).toBeLessThan(200);
  });
});

describe('outputs written over the held tensor they replace (inPlace)', () => {
  for (const [label, make] of [['in this process', async () => undefined], ['on a sidecar', async () => sidecar((await serve()).url, { token: TOKEN })]] as const) {
    test(`${label}: the same values, and the store's weight is one array from the second update on`, async () => {
      const runner = await make();
      const store = new TensorStore();
      const on = runner ? { runner } : {};
      const update = await compile(updateGraph(), { ...on, store, feedback: { new_w: 'w' }, inPlace: ['new_w'] });
      const plain = await compile(updateGraph(), { ...on, store: new TensorStore(), feedback: { new_w: 'w' } });
      const g = f32([N], [1, -2, 3, -4]);
      const w0 = f32([N], [0.5, -1, 2, 0.25]);
      await update.run({ w: w0, g });
      await plain.run({ w: w0, g });
      const first = runner ? undefined : store.tensors.get('w');
      for (let k = 0; k < 3; k++) {
        await update.run({ g });
        await plain.run({ g });
      }
      if (first) expect(store.tensors.get('w')).toBe(first); // written over, not replaced
      expect([...(await update.readHeld!('w')).data as Float32Array]).toEqual([...(await plain.readHeld!('w')).data as Float32Array]);
      const want = [0.5 - 0.4, -1 + 0.8, 2 - 1.2, 0.25 + 1.6]; // four updates of w - 0.1·g
      ((await update.readHeld!('w')).data as Float32Array).forEach((w, j) => expect(Math.abs(w - want[j]!)).toBeLessThan(1e-6));
      if (runner && 'info' in runner) expect((await (runner as ReturnType<typeof sidecar>).info()).heldBytes).toBe(2 * N * 4);
      await update.release();
      await plain.release();
    });
  }

  test('the sidecar refuses an inPlace output that is not fed back', async () => {
    const s = await serve();
    const res = await fetch(`${s.url}/v1/sessions`, {
      method: 'POST', headers: { authorization: `Bearer ${TOKEN}`, 'content-type': LOAD_CONTENT_TYPE },
      body: new Blob([encodeLoadPrefix({ inputs: [], outputs: [], parts: [{ name: 'model.onnx', bytes: 0 }], feedback: [['y', 'x']], inPlace: ['z'] } as never) as Uint8Array<ArrayBuffer>]),
    });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: { message: string } }).error.message).toContain('"inPlace" must list outputs named in "feedback"');
  });
});

describe('refusals', () => {
  test('a runner that holds per session cannot share a store', async () => {
    const perSession: Runner = { ...ortNodeRunner(), name: 'holds per session', holdsOutputs: true };
    await expect(compile(updateGraph(), { runner: perSession, store: new TensorStore() })).rejects.toThrow('holds per session holds outputs per session and cannot share a store');
  });

  test('a stored tensor that does not fit the input it is served to', async () => {
    const store = new TensorStore();
    const update = await compile(updateGraph(), { store, feedback: { new_w: 'w' } });
    await update.run({ w: f32([N], [1, 2, 3, 4]), g: f32([N], [0, 0, 0, 0]) });
    const wide = await compile(trace((g) => ({ y: op.mul(g.input('w', 'float32', [N + 1]), 2) })), { store });
    await expect(wide.run({})).rejects.toThrow("stored tensors that do not fit this step: 'w' holds float32[4], the input is float32[5]");
    await update.release();
    await wide.release();
  });

  test('the sidecar: a store id that is not a plain key, from the client and from the wire', async () => {
    const s = await serve();
    await expect(sidecar(s.url, { token: TOKEN }).load({ model: { bytes: new Uint8Array() }, inputs: [], outputs: [], origins: new Map() }, { store: '../x' }))
      .rejects.toThrow("store id '../x' is not 1 to 128 letters");
    const model = encodeModel({
      opset: 17, nodes: [{ op: 'Add', inputs: ['x', 'x'], outputs: ['y'], name: 'add' }], initializers: [],
      inputs: [{ name: 'x', dtype: 'float32', dims: [4] }], outputs: [{ name: 'y', dtype: 'float32', dims: [4] }],
    });
    const load = (store: unknown) => fetch(`${s.url}/v1/sessions`, {
      method: 'POST', headers: { authorization: `Bearer ${TOKEN}`, 'content-type': LOAD_CONTENT_TYPE },
      body: new Blob([encodeLoadPrefix({ inputs: [{ name: 'x', dtype: 'float32', dims: [4] }], outputs: [{ name: 'y', dtype: 'float32', dims: [4] }], parts: [{ name: 'model.onnx', bytes: model.length }], store } as never) as Uint8Array<ArrayBuffer>, model as Uint8Array<ArrayBuffer>]),
    });
    for (const bad of ['a/b', '', 'x'.repeat(129), 7]) {
      const res = await load(bad);
      expect(res.status).toBe(400);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe('malformed_frame');
    }
    expect((await load('run-1')).status).toBe(201);
  });
});
