/** Activation checkpointing produces the same loss and gradients as plain backpropagation. */
import { expect, test } from 'bun:test';
import { existsSync } from 'node:fs';
import { checkpointPlan } from '../../core/autodiff/checkpoint.ts';
import { hostTensor, type HostTensor } from '../../core/index.ts';
import { CompileCache, backprop, buildLossGraphWithBoundaries } from '../../core/train/graphs.ts';
import { checkpointedBackprop } from '../../core/train/checkpointed.ts';
import { PluginDriver } from '../../core/plugin/driver.ts';
import type { PluginContext, StepContext } from '../../core/plugin/context.ts';
import { loadModel } from '../../core/models/load.ts';
import { paramSpecs } from '../../core/models/params.ts';
import { lora } from '../../plugins/lora/index.ts';
import { STORIES } from '../models/fixtures.ts';

const missing = !existsSync(STORIES);
if (missing) console.warn(`skipping checkpointing tests: ${STORIES} is absent`);

async function gradsBoth(withLora: boolean) {
  const { config, weights } = await loadModel(STORIES);
  const plugins = withLora ? [lora({ r: 4, targets: 'all-linear' })] : [];
  const driver = new PluginDriver(plugins);
  const ctx: PluginContext = { model: { config, specs: paramSpecs(config) }, run: { dir: '', seed: 0, totalSteps: 1 }, phase: 'train', log: () => {}, plugin: () => undefined };
  const { graph, boundaries } = buildLossGraphWithBoundaries(driver, ctx, config);
  const params = new Map(weights);
  for (const { value } of await driver.collect('params:init', ctx, graph.inputs.filter((i) => !params.has(i.name) && !['input_ids', 'labels'].includes(i.name)).map((i) => ({ name: i.name, shape: i.v.shape as number[] })))) {
    for (const [n, t] of value) {
      // Non-zero B so LoRA gradients of A are not trivially zero.
      params.set(n, n.endsWith('lora_B.weight') ? hostTensor('float32', t.shape, Array.from(t.data as Float32Array, (_, i) => Math.sin(i) * 0.05)) : t);
    }
  }
  const trainable = withLora ? graph.inputs.map((i) => i.name).filter((n) => n.includes('lora_')) : [...weights.keys()];
  const [B, T] = [3, 24];
  const ids = hostTensor('int64', [B, T], Array.from({ length: B * T }, (_, i) => (i * 37 + 5) % 512));
  const labels = hostTensor('int64', [B, T], Array.from({ length: B * T }, (_, i) => (i % 5 === 0 ? -100 : (i * 11 + 3) % 512)));
  const cache = new CompileCache();
  const step = {
    ctx: { ...ctx, params, step: 0, trainable: new Set(trainable), dims: { B, T }, random: Math.random, stepSeed: 0, requestRetrace: () => {} } as StepContext,
    forward: graph, boundaries, trainable, lr: 0, feeds: { input_ids: ids, labels } as Record<string, HostTensor>,
    compile: (g: typeof graph, key: string) => cache.get(`${key}|${B}x${T}`, () => g, { B, T }),
  };
  const plain = await backprop().estimate(step);
  const ckpt = await checkpointedBackprop().estimate(step);
  await cache.clear();
  return { plain, ckpt, trainable, plan: checkpointPlan(graph, boundaries, trainable) };
}

function maxRel(a: Float32Array, b: Float32Array): number {
  let d = 0, s = 0;
  for (let i = 0; i < a.length; i++) {
    d = Math.max(d, Math.abs(a[i]! - b[i]!));
    s = Math.max(s, Math.abs(b[i]!));
  }
  return d / Math.max(s, 1e-30);
}

test.skipIf(missing)('full model: same loss and gradients, one stage per block', async () => {
  const { plain, ckpt, trainable, plan } = await gradsBoth(false);
  expect(plan.stages.length).toBe(7); // head, 5 blocks, embedding
  expect(ckpt.loss).toBeCloseTo(plain.loss, 6);
  for (const n of trainable) expect(maxRel(ckpt.grads!.get(n)!, plain.grads!.get(n)!)).toBeLessThan(1e-5);
});

test.skipIf(missing)('LoRA on every linear layer: same gradients', async () => {
  const { plain, ckpt, trainable } = await gradsBoth(true);
  expect(trainable.length).toBe(70);
  expect(ckpt.loss).toBeCloseTo(plain.loss, 6);
  for (const n of trainable) expect(maxRel(ckpt.grads!.get(n)!, plain.grads!.get(n)!)).toBeLessThan(1e-5);
});

