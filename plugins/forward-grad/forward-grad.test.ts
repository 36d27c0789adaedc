/** Forward gradient: the JVP gives exactly ∇f·v, the estimate trains, and the planner sees no backward pass. */
import { afterAll, describe, expect, test } from 'bun:test';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { compile, gradName, hostTensor, jvp, tangentName, trace, valueAndGrad, type HostTensor } from '../../core/index.ts';
import { buildCausalLM, causalLMLoss } from '../../core/models/llama.ts';
import { loadModel } from '../../core/models/load.ts';
import { planMemory } from '../../core/memory/index.ts';
import { train } from '../../core/train/trainer.ts';
import { fullFinetune } from '../full/index.ts';
import { lora } from '../lora/index.ts';
import { forwardGrad } from './index.ts';
import { quiet, removeTempDirs, silentProgress, STORIES, tempDir, tinyConfig, writeTinyData } from '../../tests/train/helpers.ts';

const missing = !existsSync(join(STORIES, 'config.json'));
if (missing) console.warn(`skipping Forward-Grad tests: ${STORIES} is absent`);
afterAll(removeTempDirs);

describe.skipIf(missing)('forward gradient on stories260k', () => {
  test('the tangent of the loss is ∇f·v', async () => {
    const { config, weights } = await loadModel(STORIES);
    const graph = trace((g) => ({ loss: causalLMLoss(g, buildCausalLM(g, config, { batch: 2, seq: 16 })) }));
    const names = [...weights.keys()];
    const batch = {
      input_ids: hostTensor('int64', [2, 16], Array.from({ length: 32 }, (_, i) => (i * 13 + 7) % 512)),
      labels: hostTensor('int64', [2, 16], Array.from({ length: 32 }, (_, i) => (i * 5 + 1) % 512)),
    };
    const grads = await (await compile(valueAndGrad(graph, { of: 'loss', wrt: names }))).run({ ...Object.fromEntries(weights), ...batch });
    const tangents: Record<string, HostTensor> = {};
    let expected = 0;
    for (const n of names) {
      const w = weights.get(n)!;
      const v = Float32Array.from({ length: w.data.length }, (_, i) => Math.sin(i * 0.37 + n.length));
      tangents[tangentName(n)] = hostTensor('float32', w.shape, v);
      const g = grads[gradName(n)]!.data as Float32Array;
      for (let i = 0; i < v.length; i++) expected += g[i]! * v[i]!;
    }
    const out = await (await compile(jvp(graph, { wrt: names }))).run({ ...Object.fromEntries(weights), ...batch, ...tangents });
    const got = Number(out[tangentName('loss')]!.data[0]);
    expect(Math.abs(got - expected) / Math.abs(expected)).toBeLessThan(1e-4);
  });

  test('training with Forward-Grad + LoRA lowers the loss of a fixed batch', async () => {
    const dir = tempDir('fg');
    const cfg = tinyConfig(writeTinyData(dir, 4), join(dir, 'run'), { train: { steps: 40, batchSize: 4, lr: 5e-2, optimizer: 'sgd', schedule: 'constant', maxGradNorm: 1 } });
    const losses: number[] = [];
    const probe = { name: 'probe', 'step:after': (_c: unknown, r: { loss: number }) => { losses.push(r.loss); } };
    await train({ config: cfg, plugins: [lora({ r: 4, targets: 'all-linear' }), forwardGrad({ queries: 4 }), probe], resume: false, log: quiet, progress: silentProgress });
    const first = losses.slice(0, 5).reduce((a, b) => a + b) / 5, last = losses.slice(-5).reduce((a, b) => a + b) / 5;
    console.log(`Forward-Grad + LoRA: loss ${first.toFixed(4)} -> ${last.toFixed(4)} over 40 steps`);
    expect(last).toBeLessThan(first - 0.05);
  }, 60_000);

  test('the planner plans the JVP graph, not a backward pass', async () => {
    const dir = tempDir('fg-plan');
    const cfg = tinyConfig(writeTinyData(dir, 4), join(dir, 'run'));
    const fg = await planMemory(cfg, [fullFinetune(), forwardGrad()]);
    expect(fg.items.find((i) => i.component.startsWith('activations'))!.component).toBe('activations (estimator graphs)');
    expect(fg.items.some((i) => i.component === 'gradients')).toBe(true);
  });
});
