/**
 * The sidecar runner against a real sidecar on loopback (CPU provider): the same bits as onnxruntime-node in this
 * process, each refusal, timeouts and lost connections, and a training run whose sidecar is killed mid-run and
 * restarted resuming to the weights of an uninterrupted run.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { compile, trace, valueAndGrad, type HostTensor } from '../../core/index.ts';
import * as op from '../../core/ops/api.ts';
import { encodeModel } from '../../core/onnx/model.ts';
import { buildCausalLM, causalLMLoss } from '../../core/models/llama.ts';
import { loadModel } from '../../core/models/load.ts';
import { train } from '../../core/train/trainer.ts';
import { fullFinetune, lisa, lora } from '../../plugins/index.ts';
import { ortNodeRunner } from '../../runners/ort-node.ts';
import { sidecar, SidecarError } from '../../runners/sidecar.ts';
import { startSidecar, type RunningSidecar, type SidecarServerOptions } from '../../runners/sidecar-server.ts';
import { LOAD_CONTENT_TYPE, TENSOR_CONTENT_TYPE, encodeLoadPrefix, encodeTensors } from '../../runners/sidecar-protocol.ts';
import { maxRelError, runCase } from '../../runners/conformance.ts';
import { withInputViews } from '../../core/onnx/input-views.ts';
import { tinyAdamwCase } from './cases.ts';
import { DeviceOptimizer } from '../../core/optim/device.ts';
import { isLoopback, parseListen, resolveSidecarToken, startSidecarFromOptions } from '../../cli/sidecar.ts';
import { FIXTURES, fixtureBatch } from '../models/fixtures.ts';
import { bitDifferences, quiet, readJsonl, removeTempDirs, REPO, silentProgress, STORIES, storiesMissing, tempDir, tinyConfig, writeTinyData } from '../train/helpers.ts';

const TOKEN = 'test-token-0123456789abcdef';
const servers: RunningSidecar[] = [];
afterAll(async () => {
  for (const s of servers.splice(0)) await s.stop().catch(() => {});
  removeTempDirs();
});

async function serve(extra: Partial<SidecarServerOptions> = {}): Promise<RunningSidecar> {
  const s = await startSidecar({ hostname: '127.0.0.1', port: 0, provider: 'cpu', token: TOKEN, ...extra });
  servers.push(s);
  return s;
}

const f32 = (shape: number[], f: (i: number) => number): HostTensor => ({ dtype: 'float32', shape, data: Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, (_, i) => f(i)) });
const bytes = (t: HostTensor) => new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);

/** Outputs of the same step in this process and on the sidecar, compared byte for byte. */
function expectSameBits(local: Record<string, HostTensor>, remote: Record<string, HostTensor>): void {
  expect(Object.keys(remote).sort()).toEqual(Object.keys(local).sort());
  for (const [name, t] of Object.entries(local)) {
    const r = remote[name]!;
    expect({ name, dtype: r.dtype, shape: r.shape }).toEqual({ name, dtype: t.dtype, shape: t.shape });
    expect(Buffer.compare(bytes(r), bytes(t))).toBe(0);
  }
}

/** Embedding lookup (int64 ids, resident table), a matmul with a fed weight, softmax; float32, bool and int64 outputs. */
function smallGraph() {
  return trace((g) => {
    const ids = g.input('ids', 'int64', ['B', 'T']);
    const table = g.input('table', 'float32', [16, 16]);
    const w = g.input('w', 'float32', [16, 5]);
    const h = op.matmul(op.gather(table, ids), w); // [B, T, 5]
    return { probs: op.softmax(op.tanh(h)), big: op.greaterEqual(ids, op.scalar(ids, 8)), total: op.sum(ids, -1) };
  });
}
const table = f32([16, 16], (i) => Math.sin(i * 0.37));
const smallFeeds = (): Record<string, HostTensor> => ({
  ids: { dtype: 'int64', shape: [3, 4], data: BigInt64Array.from({ length: 12 }, (_, i) => BigInt((i * 7) % 16)) },
  w: f32([16, 5], (i) => Math.cos(i * 0.11) / 4),
});

describe('results equal onnxruntime-node in this process, bit for bit', () => {
  test('a small graph, with resident weights in the model bytes and as an external data file', async () => {
    const s = await serve();
    const runner = sidecar(s.url, { token: TOKEN });
    const local = await compile(smallGraph(), { dims: { B: 3, T: 4 }, resident: { table } });
    const expected = await local.run(smallFeeds());
    await local.release();
    for (const externalDataThreshold of [undefined, 0]) {
      const beforeLoad = runner.stats.bytesSent;
      const remote = await compile(smallGraph(), { dims: { B: 3, T: 4 }, resident: { table }, runner, externalDataThreshold });
      const beforeRun = runner.stats.bytesSent;
      expectSameBits(expected, await remote.run(smallFeeds()));
      // The resident table (1 KiB) travels once, at load; a run sends only ids and w (12*8 + 80*4 bytes) and a header.
      expect(beforeRun - beforeLoad).toBeGreaterThan(1024);
      expect(runner.stats.bytesSent - beforeRun - (12 * 8 + 80 * 4)).toBeLessThan(200);
      await remote.release();
    }
    expect(s.handler.sessionCount).toBe(0);
    expect(runner.stats.loads).toBe(2);
  }, 30_000);

  test('inputs and outputs over 16 MiB (streamed both ways rather than gathered into one Blob)', async () => {
    const s = await serve();
    const g = () => trace((b) => ({ y: op.exp(b.input('x', 'float32', [4_300_000])) })); // 17.2 MB in, 17.2 MB out
    const x = f32([4_300_000], (i) => (i % 1000) / 1000);
    const local = await compile(g());
    const remote = await compile(g(), { runner: sidecar(s.url, { token: TOKEN }) });
    expectSameBits(await local.run({ x }), await remote.run({ x }));
    await Promise.all([local.release(), remote.release()]);
  }, 30_000);

  const noStories = storiesMissing('the stories260k sidecar tests') || !existsSync(join(FIXTURES, 'batch.safetensors'));
  test.skipIf(noStories)('a stories260k loss + gradient step (layer 0 trained, the rest resident)', async () => {
    const s = await serve();
    const { config, weights } = await loadModel(STORIES);
    const batch = await fixtureBatch();
    const [B, T] = batch.input_ids.shape as [number, number];
    const graph = trace((g) => ({ loss: causalLMLoss(g, buildCausalLM(g, config, { batch: B, seq: T })) }));
    const trainable = [...weights.keys()].filter((n) => n.includes('layers.0.'));
    const resident = new Map([...weights].filter(([n]) => !trainable.includes(n)));
    const grad = valueAndGrad(graph, { of: 'loss', wrt: trainable });
    const feeds: Record<string, HostTensor> = { ...batch, ...Object.fromEntries(trainable.map((n) => [n, weights.get(n)!])) };
    const local = await compile(grad, { resident, runner: ortNodeRunner() });
    const remote = await compile(grad, { resident, runner: sidecar(s.url, { token: TOKEN }) });
    const expected = await local.run(feeds);
    expect(Object.keys(expected).length).toBe(1 + trainable.length);
    expectSameBits(expected, await remote.run(feeds));
    await Promise.all([local.release(), remote.release()]);
  }, 60_000);

  test.skipIf(noStories)('training through a sidecar sends the frozen weights once, at load; a step sends its batch and adapters only', async () => {
    const s = await serve();
    const dir = tempDir('sidecar-resident');
    const data = writeTinyData(dir);
    const overrides = { train: { steps: 5 } };
    const plugins = () => [lora({ r: 4, alpha: 8, targets: ['q_proj', 'v_proj'] })];
    const local = await train({ config: tinyConfig(data, join(dir, 'local'), overrides), plugins: plugins(), progress: silentProgress, log: quiet });
    const runner = sidecar(s.url, { token: TOKEN });
    const sent: number[] = [], loads: number[] = [];
    const remote = await train({
      config: tinyConfig(data, join(dir, 'remote'), overrides), plugins: plugins(), progress: silentProgress, log: quiet, runner,
      onRecord: (r) => { if (!r.final) { sent.push(runner.stats.bytesSent); loads.push(runner.stats.loads); } },
    });
    expect(bitDifferences(remote.trained, local.trained)).toEqual([]);
    const { weights } = await loadModel(STORIES);
    const frozenBytes = [...weights.values()].reduce((n, t) => n + t.data.byteLength, 0);
    const adapterBytes = [...remote.trained.values()].reduce((n, t) => n + t.data.byteLength, 0);
    // A step that loads a session (the first, and one per new batch shape) sends the weights in it; the others reuse
    // a session and send their feeds: input_ids and labels (4 x 32 int64 each), the LoRA tensors, frame headers.
    const perStep = sent.map((b, i) => ({ bytes: b - (sent[i - 1] ?? 0), loaded: loads[i]! > (loads[i - 1] ?? 0) }));
    expect(perStep[0]!.loaded).toBe(true);
    for (const { bytes, loaded } of perStep) {
      if (loaded) expect(bytes).toBeGreaterThan(frozenBytes);
      else expect(bytes).toBeLessThan(adapterBytes + 2 * 4 * 32 * 8 + 16_384);
    }
    expect(perStep.filter((p) => !p.loaded).length).toBeGreaterThanOrEqual(2);
    expect((await runner.info()).sessions).toBe(0); // the run released what it loaded
    console.log(`sidecar training, KiB sent per step (* = loaded a session; the weights are ${(frozenBytes / 1024).toFixed(0)} KiB): ${perStep.map((p) => `${(p.bytes / 1024).toFixed(1)}${p.loaded ? '*' : ''}`).join(', ')}`);
  }, 120_000);

  test.skipIf(noStories)("train.optimizerOn 'device' keeps the parameters and moments on the sidecar: a step sends its batch, bit-equal to in-process", async () => {
    const s = await serve();
    const dir = tempDir('sidecar-device-optimizer');
    const data = writeTinyData(dir);
    // Checkpoints every 2 steps: the parameters and moments held on the sidecar are read back for each one.
    const overrides = { train: { steps: 4, optimizerOn: 'device' as const }, checkpoint: { every: 2, keep: 2 } };
    const plugins = () => [lora({ r: 4, alpha: 8, targets: ['q_proj', 'v_proj'] })];
    const local = await train({ config: tinyConfig(data, join(dir, 'local'), overrides), plugins: plugins(), progress: silentProgress, log: quiet });
    const runner = sidecar(s.url, { token: TOKEN });
    const lines: string[] = [];
    const fusedSteps = perStep(runner);
    const remote = await train({ config: tinyConfig(data, join(dir, 'remote'), overrides), plugins: plugins(), progress: silentProgress, log: (l) => lines.push(l), runner, onRecord: fusedSteps.onRecord });
    expect(bitDifferences(remote.trained, local.trained)).toEqual([]);
    // The run says what a remote runner changes: the plan is for one process, and where the training state is.
    expect(lines.some((l) => l.includes('the plan above is for the whole run in one process'))).toBe(true);
    // ... and what it holds there: a copy of the frozen weights (stories260k: ~1 MiB) per batch shape.
    const held = lines.find((l) => l.includes('each session keeps its own copy of the frozen weights'));
    console.log(held);
    expect(held).toMatch(/about \d+ batch shapes? \(\d+ training, 0 evaluation\) x 1 MiB = \d+ MiB/);
    expect(lines.some((l) => l.includes("train.optimizerOn 'device' on sidecar") && l.includes('the parameters and moments stay there'))).toBe(true);
    // The update on the host: each step sends the trainable weights; with the state on the sidecar, a step does not.
    const hostRunner = sidecar(s.url, { token: TOKEN });
    const hostSteps = perStep(hostRunner);
    await train({ config: tinyConfig(data, join(dir, 'host'), { train: { steps: 4 } }), plugins: plugins(), progress: silentProgress, log: quiet, runner: hostRunner, onRecord: hostSteps.onRecord });
    const trainableBytes = [...remote.trained.values()].reduce((n, t) => n + t.data.byteLength, 0);
    const steady = (p: typeof fusedSteps) => p.steps.filter((x, i) => i > 0 && !x.loaded && i < 4).map((x) => x.sent);
    expect(steady(fusedSteps).length).toBeGreaterThan(0);
    for (const sent of steady(fusedSteps)) expect(sent).toBeLessThan(Math.min(...steady(hostSteps)) - trainableBytes + 1024);
    console.log(`LoRA on the sidecar, bytes sent per step without loads: state on the sidecar ${steady(fusedSteps).join(', ')}; update on the host ${steady(hostSteps).join(', ')} (trainable ${trainableBytes})`);
    expect(runner.stats.runs).toBeLessThan(hostRunner.stats.runs + 4); // one graph a step: no update graphs
    expect((await runner.info())).toMatchObject({ sessions: 0, heldBytes: 0 }); // the run released its sessions and store
  }, 120_000);

  test.skipIf(noStories)("full fine-tuning with the state on the sidecar (AdamW, clipping): bit-equal to in-process, and resumed from a checkpoint read back from it", async () => {
    const s = await serve();
    const dir = tempDir('sidecar-fused-full');
    const data = writeTinyData(dir);
    const overrides = { train: { steps: 5, optimizerOn: 'device' as const, maxGradNorm: 0.5, warmupSteps: 2 }, checkpoint: { every: 2, keep: 1 } };
    const local = await train({ config: tinyConfig(data, join(dir, 'local'), overrides), plugins: [fullFinetune()], progress: silentProgress, log: quiet });
    const runner = sidecar(s.url, { token: TOKEN });
    const steps = perStep(runner);
    const remote = await train({ config: tinyConfig(data, join(dir, 'remote'), overrides), plugins: [fullFinetune()], progress: silentProgress, log: quiet, runner, onRecord: steps.onRecord });
    const trainableBytes = [...remote.trained.values()].reduce((n, t) => n + t.data.byteLength, 0);
    const steady = steps.steps.filter((x, i) => i > 0 && !x.loaded && i < 5).map((x) => x.sent);
    expect(steady.length).toBeGreaterThan(0);
    for (const sent of steady) expect(sent).toBeLessThan(trainableBytes / 100);
    console.log(`full fine-tuning on the sidecar with the state there, bytes sent per step without loads: ${steady.join(', ')} (the weights: ${trainableBytes})`);
    expect(remote.trained.size).toBe(local.trained.size);
    expect(bitDifferences(remote.trained, local.trained)).toEqual([]);
    const resumedConfig = tinyConfig(data, join(dir, 'resumed'), overrides);
    await train({ config: resumedConfig, plugins: [fullFinetune()], progress: silentProgress, log: quiet, runner, stopAfterSteps: 3 });
    const resumed = await train({ config: resumedConfig, plugins: [fullFinetune()], progress: silentProgress, log: quiet, runner });
    expect(bitDifferences(resumed.trained, local.trained)).toEqual([]);
    expect((await runner.info())).toMatchObject({ sessions: 0, heldBytes: 0 });
  }, 120_000);
});

/** Bytes sent per step, and whether the step loaded a session. */
const perStep = (runner: ReturnType<typeof sidecar>) => {
  const steps: { sent: number; loaded: boolean }[] = [];
  let sent = 0, loads = 0;
  return { steps, onRecord: () => {
    steps.push({ sent: runner.stats.bytesSent - sent, loaded: runner.stats.loads > loads });
    sent = runner.stats.bytesSent;
    loads = runner.stats.loads;
  } };
};

/** Raw requests, for what the runner itself never sends. */
const raw = (url: string, path: string, init: RequestInit & { token?: string | null } = {}) => {
  const { token = TOKEN, ...rest } = init;
  const headers = new Headers(rest.headers);
  if (token !== null) headers.set('authorization', `Bearer ${token}`);
  return fetch(`${url}${path}`, { ...rest, headers });
};
const errorOf = async (res: Response) => ({ status: res.status, ...((await res.json()) as { error: { code: string; message: string } }).error });
const addModel = encodeModel({
  opset: 17, nodes: [{ op: 'Add', inputs: ['x', 'x'], outputs: ['y'], name: 'add' }], initializers: [],
  inputs: [{ name: 'x', dtype: 'float32', dims: [4] }], outputs: [{ name: 'y', dtype: 'float32', dims: [4] }],
});
const loadBody = (parts: { name: string; bytes: number }[] = [{ name: 'model.onnx', bytes: addModel.length }]) =>
  new Blob([encodeLoadPrefix({ inputs: [], outputs: [], parts: parts as never }) as Uint8Array<ArrayBuffer>, addModel as Uint8Array<ArrayBuffer>]);

async function rawSession(url: string): Promise<string> {
  const res = await raw(url, '/v1/sessions', { method: 'POST', body: loadBody(), headers: { 'content-type': LOAD_CONTENT_TYPE } });
  expect(res.status).toBe(201);
  return ((await res.json()) as { session: string }).session;
}

/** A frame: 4-byte magic, u32 header length, header, payload. */
function frame(magic: string, header: string, payload: Uint8Array = new Uint8Array(0), declaredLength?: number): Uint8Array<ArrayBuffer> {
  const h = new TextEncoder().encode(header);
  const out = new Uint8Array(8 + h.length + payload.length);
  out.set(new TextEncoder().encode(magic));
  new DataView(out.buffer).setUint32(4, declaredLength ?? h.length, true);
  out.set(h, 8);
  out.set(payload, 8 + h.length);
  return out;
}

describe('refusals', () => {
  let s: RunningSidecar;
  beforeAll(async () => { s = await serve(); });

  test('no token, a malformed header or a wrong token: 401, nothing loaded', async () => {
    for (const token of [null, 'Basic abc']) {
      const headers: Record<string, string> = token ? { authorization: token, 'content-type': LOAD_CONTENT_TYPE } : { 'content-type': LOAD_CONTENT_TYPE };
      const res = await raw(s.url, '/v1/sessions', { token: null, method: 'POST', body: loadBody(), headers });
      expect(await errorOf(res)).toMatchObject({ status: 401, code: 'missing_token' });
    }
    for (const wrong of ['x', `${TOKEN}x`, TOKEN.replace(/.$/, 'g')]) {
      const res = await raw(s.url, '/v1/info', { token: wrong });
      expect(await errorOf(res)).toMatchObject({ status: 401, code: 'invalid_token' });
    }
    const err = await sidecar(s.url, { token: 'wrong-token-0123456789' }).info().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SidecarError);
    expect((err as SidecarError).message).toContain(`the sidecar at ${s.url} refused to report its status: incorrect token (HTTP 401, invalid_token)`);
    expect(s.handler.sessionCount).toBe(0);
    expect((await raw(s.url, '/v1/info')).status).toBe(200); // the right token passes
  });

  test('unknown session id, and a released one', async () => {
    const { parts } = encodeTensors({ x: f32([4], (i) => i) });
    const res = await raw(s.url, '/v1/sessions/no-such-session/run', { method: 'POST', body: new Blob(parts), headers: { 'content-type': TENSOR_CONTENT_TYPE } });
    expect(await errorOf(res)).toMatchObject({ status: 404, code: 'unknown_session' });
    const id = await rawSession(s.url);
    expect((await raw(s.url, `/v1/sessions/${id}`, { method: 'DELETE' })).status).toBe(204);
    expect(await errorOf(await raw(s.url, `/v1/sessions/${id}`, { method: 'DELETE' }))).toMatchObject({ status: 404, code: 'unknown_session' });
  });

  test('malformed frames: 400 each, with what was wrong; a good frame then still runs', async () => {
    const id = await rawSession(s.url);
    const x = new Uint8Array(new Float32Array([1, 2, 3, 4]).buffer);
    const header = (t: object) => JSON.stringify({ tensors: [{ name: 'x', dtype: 'float32', shape: [4], ...t }] });
    const cases: [Uint8Array<ArrayBuffer>, RegExp][] = [
      [frame('NOPE', header({}), x), /not a TFT1 frame/],
      [frame('TFT1', header({}), x, 5000), /ended inside the header/],
      [frame('TFT1', '{"tensors": [', x), /not UTF-8 JSON/],
      [frame('TFT1', '{}', x), /no "tensors" list/],
      [frame('TFT1', header({ dtype: 'complex64' }), x), /unknown dtype "complex64"/],
      [frame('TFT1', header({ shape: [2, -2] }), x), /non-negative integers/],
      [frame('TFT1', header({}), x.subarray(0, 12)), /ended inside tensor 'x' \(12 of 16 bytes\)/],
      [frame('TFT1', header({}), new Uint8Array([...x, 9])), /unexpected bytes after the end/],
      [frame('TFT1', header({}), x, 2 ** 30), /header of 1073741824 bytes/],
    ];
    for (const [body, message] of cases) {
      const e = await errorOf(await raw(s.url, `/v1/sessions/${id}/run`, { method: 'POST', body, headers: { 'content-type': TENSOR_CONTENT_TYPE } }));
      expect(e).toMatchObject({ status: 400, code: 'malformed_frame' });
      expect(e.message).toMatch(message);
    }
    const ok = await raw(s.url, `/v1/sessions/${id}/run`, { method: 'POST', body: frame('TFT1', header({}), x), headers: { 'content-type': TENSOR_CONTENT_TYPE } });
    expect(ok.status).toBe(200);
  });

  test('a load naming files of its own choosing is refused (the server names them)', async () => {
    for (const name of ['../../etc/passwd', '/tmp/model.onnx', 'weights.bin']) {
      const res = await raw(s.url, '/v1/sessions', { method: 'POST', body: loadBody([{ name, bytes: addModel.length }]), headers: { 'content-type': LOAD_CONTENT_TYPE } });
      const e = await errorOf(res);
      expect(e).toMatchObject({ status: 400, code: 'malformed_frame' });
      expect(e.message).toContain('a request never names files');
    }
  });

  test('a body over --max-body: 413, for a load and for a run', async () => {
    const small = await serve({ maxBodyBytes: 2048 });
    const runner = sidecar(small.url, { token: TOKEN });
    const bigTable = f32([32, 32], (i) => i); // 4 KiB of resident weights in the model bytes
    const g = trace((b) => ({ y: op.matmul(b.input('x', 'float32', [2, 32]), b.input('t', 'float32', [32, 32])) }));
    const err = await compile(g, { resident: { t: bigTable }, runner }).catch((e: unknown) => e);
    expect((err as SidecarError).status).toBe(413);
    expect((err as Error).message).toContain(`the sidecar at ${small.url} refused to load a compiled step: the request body exceeds the sidecar's limit of 2048 bytes (--max-body)`);
    const fed = await compile(g, { runner }); // t fed each run instead: 4 KiB per run
    const runErr = await fed.run({ x: f32([2, 32], (i) => i), t: bigTable }).catch((e: unknown) => e);
    expect((runErr as SidecarError).status).toBe(413);
    expect((runErr as Error).message).toContain('refused to run a step');
    await fed.release();
  });

  test('too many sessions: 429 with the limit; a release makes room', async () => {
    const small = await serve({ maxSessions: 2 });
    const runner = sidecar(small.url, { token: TOKEN });
    const g = () => trace((b) => ({ y: op.exp(b.input('x', 'float32', [4])) }));
    const [a, b] = [await compile(g(), { runner }), await compile(g(), { runner })];
    const err = await compile(g(), { runner }).catch((e: unknown) => e);
    expect((err as SidecarError).status).toBe(429);
    expect((err as Error).message).toContain('holds 2 sessions, its limit (--max-sessions 2)');
    await a.release();
    const c = await compile(g(), { runner });
    expect(small.handler.sessionCount).toBe(2);
    await Promise.all([b.release(), c.release()]);
  });

  test('an idle session is released after --idle-timeout', async () => {
    const small = await serve({ idleTimeoutMs: 150 });
    const exe = await compile(trace((b) => ({ y: op.exp(b.input('x', 'float32', [4])) })), { runner: sidecar(small.url, { token: TOKEN }) });
    await Bun.sleep(600);
    expect(small.handler.sessionCount).toBe(0);
    const err = await exe.run({ x: f32([4], (i) => i) }).catch((e: unknown) => e);
    expect((err as Error).message).toMatch(/no session '.*' here: it was released, idled out \(--idle-timeout 0.15 s\)/);
  });

  test('CORS: a listed origin gets a preflight answer, others are refused', async () => {
    const c = await serve({ allowOrigins: ['https://app.example'] });
    const pre = await raw(c.url, '/v1/sessions', { token: null, method: 'OPTIONS', headers: { origin: 'https://app.example' } });
    expect(pre.status).toBe(204);
    expect(pre.headers.get('access-control-allow-origin')).toBe('https://app.example');
    expect(pre.headers.get('access-control-allow-headers')).toContain('authorization');
    expect((await raw(c.url, '/v1/sessions', { token: null, method: 'OPTIONS', headers: { origin: 'https://evil.example' } })).status).toBe(403);
    expect((await raw(c.url, '/v1/info', { headers: { origin: 'https://app.example' } })).headers.get('access-control-allow-origin')).toBe('https://app.example');
  });
});

describe('transport failures name the sidecar and what to do', () => {
  test('a sidecar that does not answer: timeout', async () => {
    const silent = Bun.serve({ hostname: '127.0.0.1', port: 0, fetch: () => new Promise<Response>(() => {}) });
    const url = `http://127.0.0.1:${silent.port}`;
    try {
      const err = await compile(trace((b) => ({ y: op.exp(b.input('x', 'float32', [4])) })), { runner: sidecar(url, { token: TOKEN, timeoutMs: 300, loadTimeoutMs: 300 }) }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(SidecarError);
      expect((err as SidecarError).code).toBe('timeout');
      expect((err as Error).message).toContain(`the sidecar at ${url} did not load a compiled step within 300 ms`);
      expect((err as Error).message).toContain('resumes from its latest checkpoint');
    } finally {
      await silent.stop(true);
    }
  });

  test('a sidecar that went away mid-run: lost connection', async () => {
    const s = await serve();
    const exe = await compile(trace((b) => ({ y: op.exp(b.input('x', 'float32', [4])) })), { runner: sidecar(s.url, { token: TOKEN }) });
    expect((await exe.run({ x: f32([4], (i) => i) })).y!.data[0]).toBe(1);
    await s.stop();
    const err = await exe.run({ x: f32([4], (i) => i) }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SidecarError);
    expect((err as SidecarError).code).toBe('unreachable');
    expect((err as Error).message).toContain(`lost the connection to the sidecar at ${s.url} while trying to run a step`);
    expect((err as Error).message).toContain('restart it');
  });
});

describe('tuneforge sidecar options', () => {
  test('listen addresses, loopback and tokens', () => {
    expect(parseListen('127.0.0.1:7070')).toEqual({ hostname: '127.0.0.1', port: 7070 });
    expect(parseListen('[::1]:80')).toEqual({ hostname: '::1', port: 80 });
    expect(() => parseListen('7070')).toThrow(/HOST:PORT/);
    expect(['127.0.0.1', '127.9.0.1', '::1', 'localhost'].every(isLoopback)).toBe(true);
    expect(['0.0.0.0', '::', '10.0.0.2', '127.0.0.1.evil.example'].some(isLoopback)).toBe(false);
    expect(() => resolveSidecarToken({ loopback: false })).toThrow(/refusing to listen beyond loopback without a token/);
    expect(resolveSidecarToken({ loopback: false, env: TOKEN })).toEqual({ token: TOKEN, generated: false });
    expect(() => resolveSidecarToken({ loopback: true, env: 'short' })).toThrow(/at least 16/);
    const generated = resolveSidecarToken({ loopback: true });
    expect(generated.generated).toBe(true);
    expect(generated.token.length).toBeGreaterThanOrEqual(32);
  });

  test('a loopback sidecar without a token prints a generated one, and only it is accepted', async () => {
    const lines: string[] = [];
    const s = await startSidecarFromOptions({ listen: '127.0.0.1:0' }, {}, (l) => lines.push(l));
    servers.push(s);
    const token = /^token: (\S+)/.exec(lines[1] ?? '')?.[1];
    expect(lines[0]).toContain(`listening on ${s.url} (provider cpu`);
    expect((await sidecar(s.url, { token: token! }).info()).provider).toBe('cpu');
    expect((await raw(s.url, '/v1/info', { token: null })).status).toBe(401);
  });

  test('--max-held and --max-body take sizes, and say which flag they could not read', async () => {
    const s = await startSidecarFromOptions({ listen: '127.0.0.1:0', maxHeld: '1MiB' }, { TUNEFORGE_SIDECAR_TOKEN: TOKEN }, () => {});
    servers.push(s);
    expect((await sidecar(s.url, { token: TOKEN }).info()).limits).toMatchObject({ maxHeldBytes: 2 ** 20, maxBodyBytes: 4 * 2 ** 30 });
    await expect(startSidecarFromOptions({ listen: '127.0.0.1:0', maxHeld: 'lots' }, { TUNEFORGE_SIDECAR_TOKEN: TOKEN }, () => {})).rejects.toThrow(`--max-held: cannot read 'lots'`);
  });

  test('a non-loopback listen without a token does not start', async () => {
    await expect(startSidecarFromOptions({ listen: '0.0.0.0:0' }, {}, () => {})).rejects.toThrow(/refusing to listen beyond loopback/);
  });
});

describe.skipIf(storiesMissing('the sidecar resume test'))('a training run through a sidecar that is killed and restarted', () => {
  /** `tuneforge sidecar` in a child process; resolves once it prints where it listens. */
  async function spawnSidecar(listen: string, tokenFile: string) {
    const proc = Bun.spawn([process.execPath, join(REPO, 'cli/main.ts'), 'sidecar', '--listen', listen, '--provider', 'cpu', '--token-file', tokenFile], { stdout: 'pipe', stderr: 'pipe' });
    const reader = proc.stdout.getReader();
    let out = '';
    const deadline = Date.now() + 30_000;
    while (!/listening on (\S+)/.test(out)) {
      const { done, value } = await reader.read();
      if (done || Date.now() > deadline) throw new Error(`the sidecar did not start: ${out}${await new Response(proc.stderr).text()}`);
      out += new TextDecoder().decode(value);
    }
    reader.releaseLock();
    return { proc, url: /listening on (\S+)/.exec(out)![1]! };
  }

  test('LoRA on stories260k: killed after step 5, resumed from step 4, ends bit-identical to an uninterrupted in-process run', async () => {
    const dir = tempDir('sidecar-resume');
    const data = writeTinyData(dir);
    const tokenFile = join(dir, 'token');
    writeFileSync(tokenFile, `${TOKEN}\n`);
    const overrides = { train: { steps: 8, schedule: 'cosine' as const }, checkpoint: { every: 2, keep: 2 } };
    const plugins = () => [lora({ r: 4, alpha: 8, dropout: 0.1, targets: ['q_proj', 'v_proj'] })];
    const lines: string[] = [];
    const log = (l: string) => { lines.push(l); quiet(l); };

    const straight = await train({ config: tinyConfig(data, join(dir, 'straight'), overrides), plugins: plugins(), progress: silentProgress, log });
    expect(straight.finished).toBe(true);
    // Not vacuous: LoRA's B starts at zero, so trained B matrices that are not all zero show the run moved them.
    expect([...straight.trained].some(([n, t]) => n.includes('lora_B') && (t.data as Float32Array).some((v) => v !== 0))).toBe(true);

    const cfg = tinyConfig(data, join(dir, 'remote'), overrides);
    let side = await spawnSidecar('127.0.0.1:0', tokenFile);
    const url = side.url;
    const runner = sidecar(url, { token: TOKEN, timeoutMs: 30_000 });
    const killed = await train({
      config: cfg, plugins: plugins(), progress: silentProgress, log, runner,
      onRecord: (r) => { if (r.step === 5) side.proc.kill('SIGKILL'); },
    }).catch((e: unknown) => e);
    expect(killed).toBeInstanceOf(SidecarError);
    expect((killed as SidecarError).code).toBe('unreachable');
    expect((killed as Error).message).toContain(`lost the connection to the sidecar at ${url}`);
    expect(runner.stats.runs).toBe(5);

    side = await spawnSidecar(`127.0.0.1:${new URL(url).port}`, tokenFile);
    try {
      const resumed = await train({ config: cfg, plugins: plugins(), progress: silentProgress, log, runner });
      expect(lines.some((l) => /resumed from .*step-000004 at step 4/.test(l))).toBe(true);
      expect(resumed.finished).toBe(true);
      expect(runner.stats.runs).toBe(5 + 4);
      expect(resumed.trained.size).toBe(5 * 2 * 2);
      expect(bitDifferences(resumed.trained, straight.trained)).toEqual([]);
    } finally {
      side.proc.kill();
      await side.proc.exited;
    }
  }, 120_000);
});

describe('feedback: state held on the sidecar between runs', () => {
  // Linear regression with AdamW fused after its gradient: new weights and moments feed the next round's inputs.
  test('a fused AdamW step fed back on the sidecar equals feeding back from the host, bit for bit, and sends no state after the first run', async () => {
    const s = await serve();
    const c = await tinyAdamwCase(4);
    const expected = await runCase(ortNodeRunner(), c);
    const runner = sidecar(s.url, { token: TOKEN, feedback: c.feedback });
    const session = await runner.load(c.step);
    const sent: number[] = [], received: number[] = [];
    for (const feeds of c.rounds) {
      const [s0, r0] = [runner.stats.bytesSent, runner.stats.bytesReceived];
      const out = await session.run(withInputViews(c.step.inputs, feeds));
      sent.push(runner.stats.bytesSent - s0);
      received.push(runner.stats.bytesReceived - r0);
      expect(Object.keys(out).filter((n) => n in c.feedback!)).toEqual([]); // held, not returned
    }
    const final = Object.fromEntries(await Promise.all(Object.values(c.feedback!).map(async (i) => [i, await session.readHeld(i)] as const)));
    expectSameBits(expected.final, final);
    // Round 0 seeds weights and moments (w, b and two moments each: 3 x 28 floats); later rounds send x and y only.
    const stateBytes = 3 * (24 + 4) * 4, batchBytes = (48 + 32) * 4;
    expect(sent[0]! - sent[1]!).toBeGreaterThanOrEqual(stateBytes);
    for (const n of sent.slice(1)) expect(n - batchBytes).toBeLessThan(300);
    for (const n of received) expect(n).toBeLessThan(300); // the loss and gradient norm, not the state
    await session.release();
    await expect(session.readHeld('w')).rejects.toThrow('was released');
    expect((await runner.info()).sessions).toBe(0);
  });

  test('refusals: pairs that do not fit the step, reading what a session does not hold, a held input never fed', async () => {
    const s = await serve();
    const c = await tinyAdamwCase(1);
    await expect(sidecar(s.url, { token: TOKEN, feedback: { 'new:w': 'b' } }).load(c.step)).rejects.toThrow('new:w -> b (float32[4,6] into float32[4])');
    // The server checks too, for clients other than this one.
    const badPairs = async (feedback: unknown) => errorOf(await raw(s.url, '/v1/sessions', {
      method: 'POST', headers: { 'content-type': LOAD_CONTENT_TYPE },
      body: new Blob([encodeLoadPrefix({ inputs: [{ name: 'x', dtype: 'float32', dims: [4] }], outputs: [{ name: 'y', dtype: 'float32', dims: [4] }], parts: [{ name: 'model.onnx', bytes: addModel.length }], feedback } as never) as Uint8Array<ArrayBuffer>, addModel as Uint8Array<ArrayBuffer>]),
    }));
    expect(await badPairs([['y', 'nope']])).toMatchObject({ status: 400, code: 'bad_feedback', message: expect.stringContaining('y -> nope (no such input)') });
    expect(await badPairs([['y', 'x', 'z']])).toMatchObject({ status: 400, code: 'malformed_frame', message: expect.stringContaining('[output, input] name pairs') });
    const plain = await rawSession(s.url);
    expect(await errorOf(await raw(s.url, `/v1/sessions/${plain}/held/x`))).toMatchObject({ status: 404, code: 'nothing_held' });
    const held = await sidecar(s.url, { token: TOKEN, feedback: c.feedback }).load(c.step);
    await expect(held.readHeld('x')).rejects.toThrow("nothing is held for input 'x'");
    const refused = await held.run({}).then(() => '', (e: Error) => e.message);
    expect(refused).toContain('inputs neither fed nor held from a previous run: w, m:w, v:w, b, m:b, v:b (HTTP 422, run_failed)');
    const id = /session ([0-9a-f-]+)/.exec(refused)![1]!;
    expect(await errorOf(await raw(s.url, `/v1/sessions/${id}/held/w`))).toMatchObject({ status: 404, code: 'nothing_held', message: expect.stringContaining("nothing held for input 'w'") });
    expect(await errorOf(await raw(s.url, `/v1/sessions/${id}/held/%E0%A4%A`))).toMatchObject({ status: 400, code: 'bad_name' });
    await held.release();
  });

  test('--max-held: a run that would hold more than the limit is refused (507) and holds nothing; releases give the bytes back', async () => {
    const c = await tinyAdamwCase(2);
    const state = 3 * (24 + 4) * 4; // w, b and their two moments
    const small = await serve({ maxHeldBytes: state - 1 });
    const refused = await sidecar(small.url, { token: TOKEN, feedback: c.feedback }).load(c.step);
    const message = await refused.run(withInputViews(c.step.inputs, c.rounds[0]!)).then(() => '', (e: Error) => e.message);
    expect(message).toContain(`holding ${state} more bytes of fed-back outputs would exceed the sidecar's limit of ${state - 1}`);
    expect(message).toContain('HTTP 507, held_limit');
    await expect(refused.readHeld('w')).rejects.toThrow("nothing held for input 'w'");
    const roomy = await serve({ maxHeldBytes: state });
    const runner = sidecar(roomy.url, { token: TOKEN, feedback: c.feedback });
    const ok = await runner.load(c.step);
    for (const feeds of c.rounds) await ok.run(withInputViews(c.step.inputs, feeds)); // replacing the state holds no more
    expect((await runner.info()).heldBytes).toBe(state);
    await ok.release();
    expect((await runner.info()).heldBytes).toBe(0);
  });
});

describe('the device optimizer on the sidecar keeps its moments there', () => {
  test.skipIf(storiesMissing('the LISA sidecar test'))('LISA through the sidecar with the update on the device: switches, frozen-again state, checkpoints and a resume, bit-equal to in-process', async () => {
    const s = await serve();
    const dir = tempDir('sidecar-lisa-device');
    const data = writeTinyData(dir);
    const overrides = { train: { steps: 6, optimizerOn: 'device' as const }, checkpoint: { every: 2, keep: 1 } };
    const plugins = () => [lisa({ activeLayers: 1, interval: 2 })];
    const local = await train({ config: tinyConfig(data, join(dir, 'local'), overrides), plugins: plugins(), progress: silentProgress, log: quiet });
    const runner = sidecar(s.url, { token: TOKEN });
    const lines: string[] = [];
    const remote = await train({ config: tinyConfig(data, join(dir, 'remote'), overrides), plugins: plugins(), progress: silentProgress, log: (l) => lines.push(l), runner });
    expect(bitDifferences(remote.trained, local.trained)).toEqual([]);
    // LISA switches layers between steps, so the state cannot stay on the sidecar: the run says so, and why.
    expect(lines.some((l) => l.includes('the moments stay there, but plugins tuneforge:lisa act between steps') && l.includes("against 2x with 'host'"))).toBe(true);
    // Stopped after step 3 and started again: resumes from step 2's checkpoint, whose moments came from the sidecar.
    const resumedConfig = tinyConfig(data, join(dir, 'resumed'), overrides);
    await train({ config: resumedConfig, plugins: plugins(), progress: silentProgress, log: quiet, runner, stopAfterSteps: 3 });
    const resumed = await train({ config: resumedConfig, plugins: plugins(), progress: silentProgress, log: quiet, runner });
    expect(bitDifferences(resumed.trained, local.trained)).toEqual([]);
    expect((await runner.info()).sessions).toBe(0);
  }, 120_000);

  test.skipIf(storiesMissing('the micro-batch sidecar test'))('with micro-batches the state stays on the sidecar too: each adds its share of the gradient there, then a graph without the model updates (within float32 rounding)', async () => {
    const s = await serve();
    const dir = tempDir('sidecar-fused-micro');
    const data = writeTinyData(dir);
    const overrides = { train: { steps: 4, optimizerOn: 'device' as const, maxGradNorm: 0.5, microBatchSize: 2 } };
    const local = await train({ config: tinyConfig(data, join(dir, 'local'), overrides), plugins: [fullFinetune()], progress: silentProgress, log: quiet });
    const runner = sidecar(s.url, { token: TOKEN });
    const steps = perStep(runner);
    const remote = await train({ config: tinyConfig(data, join(dir, 'remote'), overrides), plugins: [fullFinetune()], progress: silentProgress, log: quiet, runner, onRecord: steps.onRecord });
    // Not bit for bit: the accumulation adds n·g in float32 graph operations where accumulate.ts rounds once.
    let worst = 0;
    for (const [n, t] of local.trained) worst = Math.max(worst, maxRelError(remote.trained.get(n)!, t));
    console.log(`full fine-tuning, 2 micro-batches a step, state on the sidecar: max relative difference from in-process ${worst.toExponential(2)} after 4 steps`);
    expect(worst).toBeLessThan(1e-4);
    const [a, b] = [readJsonl(join(dir, 'remote', 'metrics.jsonl')), readJsonl(join(dir, 'local', 'metrics.jsonl'))];
    a.filter((r) => r.loss !== undefined && r.final === undefined).forEach((r, k) => expect(Math.abs(r.loss! - b[k]!.loss!)).toBeLessThan(1e-4));
    const trainableBytes = [...remote.trained.values()].reduce((n, t) => n + t.data.byteLength, 0);
    for (const x of steps.steps.filter((x, i) => i > 0 && !x.loaded && i < 4)) expect(x.sent).toBeLessThan(trainableBytes / 100);
    expect((await runner.info())).toMatchObject({ sessions: 0, heldBytes: 0 });
  }, 120_000);

  test.skipIf(storiesMissing('the LoRA micro-batch sidecar test'))('LoRA with 4 micro-batches a step and the state on the sidecar: the frozen weights go up once, in one session (within float32 rounding of in-process)', async () => {
    const s = await serve();
    const dir = tempDir('sidecar-fused-micro-lora');
    const data = writeTinyData(dir);
    const overrides = { train: { steps: 3, optimizerOn: 'device' as const, maxGradNorm: 0.5, batchSize: 4, microBatchSize: 1, padMultiple: 32 } }; // every micro-batch 1 x 32: one shape
    const plugins = () => [lora({ r: 4, alpha: 8, targets: ['q_proj', 'v_proj'] })];
    const local = await train({ config: tinyConfig(data, join(dir, 'local'), overrides), plugins: plugins(), progress: silentProgress, log: quiet });
    const runner = sidecar(s.url, { token: TOKEN });
    const remote = await train({ config: tinyConfig(data, join(dir, 'remote'), overrides), plugins: plugins(), progress: silentProgress, log: quiet, runner });
    let worst = 0;
    for (const [n, t] of local.trained) worst = Math.max(worst, maxRelError(remote.trained.get(n)!, t));
    console.log(`LoRA, 4 micro-batches a step, state on the sidecar: ${runner.stats.loads} sessions loaded, ${runner.stats.bytesSent} bytes sent in all; max relative difference from in-process ${worst.toExponential(2)}`);
    expect(worst).toBeLessThan(1e-3); // AdamW on adapters that start at 0 (webgpu-sidecar.test.ts says why)
    // The accumulate graph (with the model) and the update graph (without): the weights went up once, not once per
    // micro-batch graph, and nothing else a run sends comes near them.
    const weightBytes = [...(await loadModel(STORIES)).weights.values()].reduce((n, t) => n + t.data.byteLength, 0);
    expect(runner.stats.loads).toBe(2);
    expect(runner.stats.bytesSent).toBeGreaterThan(weightBytes);
    expect(runner.stats.bytesSent).toBeLessThan(1.5 * weightBytes);
    expect((await runner.info())).toMatchObject({ sessions: 0, heldBytes: 0 });
  }, 120_000);

  const shapes = new Map<string, number[]>([['a', [64, 48]], ['b', [48]], ['c', [96, 32]], ['d', [32]]]);
  const values = (seed: number) => new Map([...shapes].map(([n, sh]) => [n, Float32Array.from({ length: sh.reduce((x, y) => x * y, 1) }, (_, i) => Math.sin(seed * 13 + i * 0.7) / 3)]));
  const momentBytes = 2 * [...shapes.values()].reduce((n, sh) => n + 4 * sh.reduce((x, y) => x * y, 1), 0); // AdamW: m and v

  test('bit-equal to the update fed from the host over 6 steps (two buckets, clipping), moments sent once, read back for stateDict', async () => {
    const s = await serve();
    const runner = sidecar(s.url, { token: TOKEN });
    const opts = { lr: 1e-2, weightDecay: 0.1 };
    // bucketBytes of 16 KiB: a and c get a graph each, b and d share one; the clip scale comes from a norm graph.
    const device = { bucketBytes: 16_384, clippedGrads: true };
    const reference = DeviceOptimizer.adamw(opts, { shapes }, device); // onnxruntime-node here: state fed every update
    const remote = DeviceOptimizer.adamw(opts, { shapes }, { ...device, runner });
    const [pRef, pRemote] = [values(1), values(1)];
    const sent: number[] = [];
    for (let step = 0; step < 6; step++) {
      const before = runner.stats.bytesSent;
      const r1 = await reference.clipAndStep(pRef, values(10 + step), 1e-2, 0.5);
      const r2 = await remote.clipAndStep(pRemote, values(10 + step), 1e-2, 0.5);
      expect(r2.norm).toBe(r1.norm!);
      sent.push(runner.stats.bytesSent - before);
      if (step === 2) {
        expect(() => remote.stateDict()).toThrow('held on the runner and newer than here; await syncState() first');
        await remote.syncState();
        const [a, b] = [remote.stateDict(), reference.stateDict()];
        expect(Object.keys(a).sort()).toEqual(Object.keys(b).sort());
        for (const k of Object.keys(b)) expect(a[k]).toEqual(b[k]!);
      }
    }
    for (const [n, p] of pRef) expect(Buffer.compare(Buffer.from(pRemote.get(n)!.buffer), Buffer.from(p.buffer))).toBe(0);
    // Step 0 sends parameters, gradients and zero moments; later steps parameters and gradients only.
    for (const n of sent.slice(1)) expect(sent[0]! - n).toBeGreaterThanOrEqual(momentBytes);
    console.log(`device AdamW on the sidecar, bytes sent per update: ${sent.join(', ')} (moments: ${momentBytes})`);
    expect(remote.stateBytes()).toBe(reference.stateBytes());
    // Loading a state replaces what the sidecar holds: both continue from the same saved state.
    await remote.syncState();
    const saved = remote.stateDict();
    remote.loadStateDict(saved);
    await remote.clipAndStep(pRemote, values(99), 1e-2, 0.5);
    await reference.clipAndStep(pRef, values(99), 1e-2, 0.5);
    for (const [n, p] of pRef) expect(Array.from(pRemote.get(n)!)).toEqual(Array.from(p));
    await remote.release(); // reads the moments back, then frees the sessions
    expect((await runner.info()).sessions).toBe(0);
    expect(() => remote.stateDict()).not.toThrow();
    await reference.release();
  }, 60_000);
});

describe.skipIf(storiesMissing('the CLI sidecar test'))('tuneforge train --sidecar', () => {
  /** The CLI in a child process; resolves with its exit code and output. */
  async function cli(args: string[], env: Record<string, string> = {}) {
    const p = Bun.spawn([process.execPath, join(REPO, 'cli/main.ts'), ...args], { stdout: 'pipe', stderr: 'pipe', env: { ...process.env, TUNEFORGE_SIDECAR_TOKEN: '', ...env } });
    const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
    return { code, out, err };
  }

  test("full fine-tuning with optimizerOn 'device' through the sidecar from the command line: the losses of the run in this process, the state kept there", async () => {
    const s = await serve();
    const dir = tempDir('cli-sidecar');
    const data = writeTinyData(dir);
    const tokenFile = join(dir, 'token');
    writeFileSync(tokenFile, `${TOKEN}\n`);
    const config = (output: string) => ({ model: STORIES, output, seed: 3, data: { train: data, maxLength: 32 }, train: { steps: 3, batchSize: 4, lr: 1e-3, optimizerOn: 'device' }, plugins: [{ name: 'full' }], export: { merged: false, adapters: false } });
    writeFileSync(join(dir, 'remote.json'), JSON.stringify(config(join(dir, 'remote'))));
    writeFileSync(join(dir, 'local.json'), JSON.stringify(config(join(dir, 'local'))));
    const remote = await cli(['train', '--config', join(dir, 'remote.json'), '--sidecar', `${s.url}/`, '--sidecar-token-file', tokenFile]);
    expect(remote.code).toBe(0);
    expect(remote.out).toContain('trained 3 steps');
    expect(remote.err).toContain(`steps run on the sidecar at ${s.url} (cpu provider)`);
    expect(remote.err).toContain('the parameters and moments stay there');
    const local = await cli(['train', '--config', join(dir, 'local.json')]);
    expect(local.code).toBe(0);
    const losses = (run: string) => readJsonl(join(dir, run, 'metrics.jsonl')).filter((r) => r.loss !== undefined && r.final === undefined).map((r) => r.loss);
    expect(losses('remote')).toEqual(losses('local'));
    expect(losses('remote').length).toBe(3);
  }, 120_000);

  test('refusals: no token, a token file that is empty, a URL that is not one, a wrong token, a token file alone', async () => {
    const s = await serve();
    const dir = tempDir('cli-sidecar-refusals');
    const config = join(dir, 'c.json');
    writeFileSync(config, JSON.stringify({ model: STORIES, output: join(dir, 'run'), data: { train: writeTinyData(dir), maxLength: 32 }, train: { steps: 1, batchSize: 2 }, plugins: [{ name: 'full' }] }));
    const empty = join(dir, 'empty');
    writeFileSync(empty, '\n');
    const cases: [string[], Record<string, string>, string][] = [
      [['--sidecar', s.url], {}, 'give the sidecar\'s token with --sidecar-token-file FILE or TUNEFORGE_SIDECAR_TOKEN'],
      [['--sidecar', s.url, '--sidecar-token-file', empty], {}, `--sidecar-token-file ${empty} is empty`],
      [['--sidecar', 'gpu-box:7070'], { TUNEFORGE_SIDECAR_TOKEN: TOKEN }, "is not an http:// or https:// URL"],
      [['--sidecar', s.url], { TUNEFORGE_SIDECAR_TOKEN: 'not-the-token-0123456789' }, '401'],
      [['--sidecar-token-file', empty], {}, '--sidecar-token-file goes with --sidecar URL'],
    ];
    for (const [args, env, message] of cases) {
      const r = await cli(['train', '--config', config, ...args], env);
      expect([args.join(' '), r.code !== 0]).toEqual([args.join(' '), true]);
      expect(r.err).toContain(message);
    }
    expect(existsSync(join(dir, 'run', 'metrics.jsonl'))).toBe(false); // refused before anything ran
  }, 120_000);
});
