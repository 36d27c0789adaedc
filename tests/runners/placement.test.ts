/**
 * onnxruntime-node on a GPU provider says where it ran each node (ort-node-placement.ts): a float64 sum (WebGPU has no
 * float64) is named on the CPU with its IR equation, the trainer's fused step with clipping is all on the device, the
 * report comes once per session, and a WebGPU sidecar logs it. Needs a WebGPU adapter (lavapipe in CI).
 */
import { afterAll, describe, expect, test } from 'bun:test';
import { valueAndGrad } from '../../core/autodiff/vjp.ts';
import { compile } from '../../core/compile.ts';
import { trace } from '../../core/ir/graph.ts';
import { hostTensor } from '../../core/ir/host.ts';
import * as nn from '../../core/nn/index.ts';
import * as op from '../../core/ops/api.ts';
import { DeviceOptimizer } from '../../core/optim/device.ts';
import type { NodePlacement } from '../../runners/ort-node-placement.ts';
import { ortNodeRunner } from '../../runners/ort-node.ts';
import { sidecar } from '../../runners/sidecar.ts';
import { startSidecar, type RunningSidecar } from '../../runners/sidecar-server.ts';
import { probeProvider } from '../../runners/sidecar-providers.ts';

const why = await probeProvider('webgpu').then(() => undefined, (e: Error) => e.message.split('\n')[0]);
if (why) console.warn(`skipping the placement tests: ${why} (Debian: bash .ci/lavapipe.sh installs a software Vulkan driver)`);
const servers: RunningSidecar[] = [];
afterAll(async () => {
  for (const s of servers) await s.stop();
});

/** x [2, 3] -> 3 · sum of x² in float64 (the square and the scaling in float32): the float64 sum has no WebGPU kernel. */
const float64Sum = () => trace((g) => {
  const x = g.input('x', 'float32', [2, 3]);
  const s = op.cast(op.sum(op.cast(op.mul(x, x), 'float64')), 'float32'); // []
  return { y: op.mul(op.mul(op.add(x, x), 0.5), op.reshape(s, [1, 1])) }; // [2, 3]: x · s, on the device again
});
const x = hostTensor('float32', [2, 3], [1, 2, 3, 4, 5, 6]);

describe.skipIf(why !== undefined)("onnxruntime-node's WebGPU provider reports where it ran each node", () => {
  test('a float64 sum is named on the CPU, with its equation; the report comes once, after the first run', async () => {
    const reports: NodePlacement[] = [];
    const exe = await compile(float64Sum(), { runner: ortNodeRunner({ provider: 'webgpu', onPlacement: (p) => reports.push(p) }) });
    for (let i = 0; i < 3; i++) expect([...(await exe.run({ x })).y!.data]).toEqual([91, 182, 273, 364, 455, 546]);
    await exe.release();
    expect(reports).toHaveLength(1);
    const [r] = reports as [NodePlacement];
    console.log(`float64 sum on WebGPU: ${r.summary}; ${r.cpuNodes.map((n) => `${n.opType} ${n.node} <- ${n.origin}`).join('; ')}`);
    expect(r.cpuNodes.some((n) => n.opType === 'ReduceSum' && /reduce_sum/.test(n.origin ?? ''))).toBe(true);
    expect(r.copies).toBeGreaterThan(0);
    expect(r.summary).toContain('on CPUExecutionProvider');
  });

  test("the trainer's fused AdamW step with clipping runs every node on WebGPU", async () => {
    const loss = trace((g) => {
      const xs = g.input('x', 'float32', [8, 6]), y = g.input('y', 'float32', [8, 4]);
      return { loss: op.mean(op.square(op.sub(nn.linear(xs, g.input('w', 'float32', [4, 6]), g.input('b', 'float32', [4])), y))) };
    });
    const graph = DeviceOptimizer.adamw({ lr: 1e-3 }).fuse(valueAndGrad(loss, { of: 'loss', wrt: ['w', 'b'] }), ['w', 'b'], true, 'only');
    const reports: NodePlacement[] = [];
    const exe = await compile(graph, { runner: ortNodeRunner({ provider: 'webgpu', onPlacement: (p) => reports.push(p) }) });
    const f = (shape: number[]) => hostTensor('float32', shape, Array.from({ length: shape.reduce((a, b) => a * b, 1) }, (_, i) => Math.sin(i)));
    await exe.run(Object.fromEntries(exe.inputs.map((i) => [i.name, f([...i.dims])])));
    await exe.release();
    console.log(`fused AdamW with clipping on WebGPU: ${reports[0]!.summary}`);
    expect(reports[0]!.cpuNodes).toEqual([]);
    expect(reports[0]!.summary).toStartWith('all ');
  });

  test('the CPU provider reports nothing (every node is on the CPU by choice)', async () => {
    const reports: NodePlacement[] = [];
    const exe = await compile(float64Sum(), { runner: ortNodeRunner({ onPlacement: (p) => reports.push(p) }) });
    await exe.run({ x });
    await exe.release();
    expect(reports).toEqual([]);
  });

  test("a WebGPU sidecar logs each session's placement after its first run", async () => {
    const lines: string[] = [];
    const s = await startSidecar({ hostname: '127.0.0.1', port: 0, provider: 'webgpu', token: 'test-token-0123456789abcdef', log: (l) => lines.push(l) });
    servers.push(s);
    const exe = await compile(float64Sum(), { runner: sidecar(s.url, { token: 'test-token-0123456789abcdef' }) });
    await exe.run({ x });
    await exe.run({ x });
    await exe.release();
    const placed = lines.filter((l) => l.includes('first run:'));
    expect(placed).toHaveLength(1);
    expect(placed[0]).toMatch(/^sidecar: session [0-9a-f-]+, first run: \d+ nodes? on CPUExecutionProvider \(.*ReduceSum ×1.*\) of \d+, the rest on WebGpuExecutionProvider; [1-9]\d* host<->device copies$/);
  });
});
