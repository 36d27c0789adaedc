/** onnxruntime-web runner behaviour in this process (wasm), and the placement-log parser on a real log excerpt. */
import { afterAll, describe, expect, test } from 'bun:test';
import { join } from 'node:path';
import { train } from '../../core/train/trainer.ts';
import { fullFinetune } from '../../plugins/index.ts';
import { quiet, readJsonl, removeTempDirs, silentProgress, storiesMissing, tempDir, tinyConfig, writeTinyData } from '../train/helpers.ts';
import { trace } from '../../core/ir/graph.ts';
import { hostTensor } from '../../core/ir/host.ts';
import * as op from '../../core/ops/api.ts';
import { AdamW } from '../../core/optim/adamw.ts';
import { DeviceOptimizer } from '../../core/optim/device.ts';
import { captureStep, maxRelError } from '../../runners/conformance.ts';
import { ortWebRunner } from '../../runners/ort-web.ts';
import { describeCpuNodes, parsePlacements } from '../../runners/ort-web-placement.ts';

afterAll(removeTempDirs);

// Lines as onnxruntime-web 1.30 printed them in Chromium for the gradient of gather (one node on the CPU).
const LOG = [
  '2026-12-03 06:13:22.812544 [V:onnxruntime:, session_state.cc:1377 VerifyEachNodeIsAssignedToAnEp] Node placements',
  '2026-12-03 06:13:22.813039 [V:onnxruntime:, session_state.cc:1383 VerifyEachNodeIsAssignedToAnEp]  Node(s) placed on [CPUExecutionProvider]. Number of nodes: 1',
  '2026-12-03 06:13:22.813369 [V:onnxruntime:, session_state.cc:1385 VerifyEachNodeIsAssignedToAnEp]   Unsqueeze (scatter_add_rows_12_1)',
  '2026-12-03 06:13:22.813659 [V:onnxruntime:, session_state.cc:1383 VerifyEachNodeIsAssignedToAnEp]  Node(s) placed on [JsExecutionProvider]. Number of nodes: 3',
  '2026-12-03 06:13:22.814009 [V:onnxruntime:, session_state.cc:1385 VerifyEachNodeIsAssignedToAnEp]   Exp (exp_0)',
  '2026-12-03 06:13:22.816624 [V:onnxruntime:, session_state.cc:1385 VerifyEachNodeIsAssignedToAnEp]   MemcpyFromHost (Memcpy)',
  '2026-12-03 06:13:22.816879 [V:onnxruntime:, session_state.cc:1385 VerifyEachNodeIsAssignedToAnEp]   MemcpyFromHost (Memcpy_token_0)',
  '2026-12-03 06:13:22.817124 [W:onnxruntime:, session_state.cc:1397 VerifyEachNodeIsAssignedToAnEp] Some nodes were not assigned to the preferred execution providers',
];

describe('placement log', () => {
  test('CPU nodes are named, mapped to their IR equation, copies counted', () => {
    const origins = new Map([['scatter_add_rows_12_1', { prim: 'scatter_add_rows', eqnIndex: 12, signature: 'scatter_add_rows(float32[5,3], int64[2,4], float32[2,4,3]) -> float32[5,3]' }]]);
    const p = parsePlacements(LOG, origins)!;
    expect(p.counts).toEqual({ CPUExecutionProvider: 1, JsExecutionProvider: 3 });
    expect(p.cpuNodes).toEqual([{ opType: 'Unsqueeze', node: 'scatter_add_rows_12_1', origin: `equation 12: ${origins.get('scatter_add_rows_12_1')!.signature}` }]);
    expect(p.copies).toBe(2);
    expect(describeCpuNodes(p.cpuNodes)).toBe('1 node on CPUExecutionProvider (Unsqueeze ×1)');
  });

  test('a log without the placement block says nothing (not: no CPU nodes)', () => {
    expect(parsePlacements(['[I:onnxruntime:, inference_session.cc:3094 Initialize] Session successfully initialized.'], new Map())).toBeUndefined();
    expect(parsePlacements(['[V:onnxruntime:, session_state.cc:1380 VerifyEachNodeIsAssignedToAnEp]  All nodes placed on [JsExecutionProvider]. Number of nodes: 3'], new Map()))
      .toEqual({ counts: { JsExecutionProvider: 3 }, cpuNodes: [], copies: 0 });
  });
});

describe('ortWebRunner (wasm)', () => {
  const step = () => captureStep(trace((g) => {
    const w = g.input('w', 'float32', [3]), x = g.input('x', 'float32', [3]);
    return { y: op.mul(w, x), 'new:w': op.add(w, x) };
  }));
  const t = (v: number[]) => hostTensor('float32', [3], v);

  test('fed-back outputs are held, not returned, and served when the input is omitted', async () => {
    const s = await ortWebRunner({ feedback: { 'new:w': 'w' } }).load(await step());
    const first = await s.run({ w: t([1, 2, 3]), x: t([1, 1, 1]) });
    expect(Object.keys(first)).toEqual(['y']);
    const second = await s.run({ x: t([2, 2, 2]) }); // w = [2, 3, 4] from the held output
    expect(Array.from(second.y!.data as Float32Array)).toEqual([4, 6, 8]);
    expect(Array.from((await s.readHeld('w')).data as Float32Array)).toEqual([4, 5, 6]);
    await s.release();
  });

  test('errors name what is wrong', async () => {
    const s = await ortWebRunner().load(await step());
    await expect(s.run({ x: t([1, 1, 1]) })).rejects.toThrow('inputs neither fed nor held from a previous run: w');
    await expect(s.readHeld('w')).rejects.toThrow("nothing held for input 'w'");
    expect((await s.fallbackReport()).placements).toBe('not-needed');
    await s.release();
    await expect(ortWebRunner({ feedback: { 'new:v': 'w' } }).load(await step())).rejects.toThrow('new:v -> w');
    await expect(ortWebRunner({ backend: 'webgpu' }).load(await step())).rejects.toThrow('WebGPU is not available here');
  });
});

describe('the device optimizer on onnxruntime-web keeps its moments in the session', () => {
  test('AdamW over 4 updates matches core/optim AdamW; the moments read back for stateDict', async () => {
    const shapes = new Map([['w', [8, 6]], ['b', [6]]]);
    const values = (seed: number) => new Map([...shapes].map(([n, sh]) => [n, Float32Array.from({ length: sh[0]! * (sh[1] ?? 1) }, (_, i) => Math.cos(seed * 5 + i * 0.3) / 2)]));
    const opts = { lr: 1e-2, weightDecay: 0.1 };
    const device = DeviceOptimizer.adamw(opts, { shapes }, { runner: ortWebRunner() });
    const host = new AdamW(opts, { shapes });
    const [pDevice, pHost] = [values(1), values(1)];
    for (let step = 0; step < 4; step++) {
      await device.step(pDevice, values(20 + step), 1e-2);
      host.step(pHost, values(20 + step), 1e-2);
    }
    for (const [n, p] of pHost) expect(maxRelError({ dtype: 'float32', shape: [p.length], data: pDevice.get(n)! }, { dtype: 'float32', shape: [p.length], data: p })).toBeLessThan(1e-6);
    expect(() => device.stateDict()).toThrow('await syncState() first');
    await device.syncState();
    const [a, b] = [device.stateDict(), host.stateDict()];
    for (const k of Object.keys(b)) {
      const [x, y] = [a[k]!, b[k]!];
      if (typeof y === 'number') expect(x).toBe(y);
      else expect(maxRelError({ dtype: 'float32', shape: [y.length], data: x as Float32Array }, { dtype: 'float32', shape: [y.length], data: y })).toBeLessThan(1e-5);
    }
    await device.release();
  });
});

describe.skipIf(storiesMissing('the onnxruntime-web training run'))('a training run with the state on onnxruntime-web', () => {
  test("train.optimizerOn 'device': full fine-tuning as one fused graph a step, its state in the runner's store; within float32 rounding of in-process", async () => {
    const dir = tempDir('ort-web-fused');
    const data = writeTinyData(dir);
    const overrides = { train: { steps: 3, optimizerOn: 'device' as const, maxGradNorm: 1 }, checkpoint: { every: 2, keep: 1 } };
    const local = await train({ config: tinyConfig(data, join(dir, 'local'), overrides), plugins: [fullFinetune()], progress: silentProgress, log: quiet });
    const runner = ortWebRunner();
    const lines: string[] = [];
    const web = await train({ config: tinyConfig(data, join(dir, 'web'), overrides), plugins: [fullFinetune()], progress: silentProgress, log: (l) => lines.push(l), runner });
    expect(lines.some((l) => l.includes("train.optimizerOn 'device' on onnxruntime-web (wasm): the parameters and moments stay there"))).toBe(true);
    expect(web.trained.size).toBe(local.trained.size);
    let worst = 0;
    for (const [n, t] of local.trained) worst = Math.max(worst, maxRelError(web.trained.get(n)!, t));
    console.log(`full fine-tuning on onnxruntime-web (wasm) with its state there, 3 steps: max relative difference ${worst.toExponential(2)}`);
    expect(worst).toBeLessThan(1e-4);
    const [a, b] = [readJsonl(join(dir, 'web', 'metrics.jsonl')), readJsonl(join(dir, 'local', 'metrics.jsonl'))];
    a.filter((r) => r.loss !== undefined && r.final === undefined).forEach((r, k) => expect(Math.abs(r.loss! - b[k]!.loss!)).toBeLessThan(1e-5));
  }, 120_000);
});
