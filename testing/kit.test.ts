/**
 * The plugin kit checks itself: each check passes for built-in techniques and fails, with a message saying what
 * differed, for a plugin that is wrong in exactly the way the check exists to catch.
 */
import { expect, test } from 'bun:test';
import { definePrimitive, type Plugin } from '../core/index.ts';
import { lora, nf4 } from '../plugins/index.ts';
import { checkGradients, expectExportRoundTrip, expectGradients, expectPlanHolds, expectResumeExact, KitError } from './index.ts';

/** 2x in the forward pass, but a derivative of 1: a wrong VJP, as a hand-written primitive might have. */
const wrongDouble = definePrimitive<Record<string, never>>({
  name: 'test_wrong_double',
  infer: (types) => types[0]!,
  lower: (ctx) => ctx.node('Add', [ctx.inputs[0]!, ctx.inputs[0]!], [ctx.out]),
  jvp: ({ tangents }) => tangents[0] ?? null,
  vjp: ({ ct }) => [ct],
  cost: () => ({ flops: 0, bytes: 0 }),
});

const loraSmall = () => lora({ r: 2, alpha: 4, targets: ['q_proj', 'v_proj'] });

test('gradients: LoRA and LoRA over an NF4 base pass; a primitive with a wrong derivative fails', async () => {
  expect((await expectGradients({ plugins: () => [loraSmall()] })).ok).toBe(true);
  expect((await expectGradients({ plugins: () => [nf4({ blockSize: 16 }), loraSmall()] })).ok).toBe(true);
  const broken = (): Plugin[] => {
    const l = loraSmall();
    return [{ ...l, 'model:linear': (ctx, site, x, w, b, next) => {
      const y = l['model:linear']!(ctx, site, x, w, b, next);
      return site.module === 'v_proj' ? x.builder.bind(wrongDouble, [y], {}) : y;
    } }];
  };
  const report = await checkGradients({ plugins: broken });
  expect(report.ok).toBe(false);
  expect(report.rows.filter((r) => !r.ok).some((r) => r.tensor.includes('v_proj'))).toBe(true);
  await expect(expectGradients({ plugins: broken })).rejects.toThrow(/gradient check failed/);
}, 60_000);

test('resume: LoRA resumes exactly; a plugin whose state is not saved does not', async () => {
  expect((await expectResumeExact({ plugins: () => [loraSmall()] })).tensors).toBe(8);
  const forgetful = (): Plugin[] => {
    const l = loraSmall();
    let steps = 0; // never saved: counts from 0 again after a resume
    return [{ ...l, 'step:after': (ctx) => {
      if (++steps === 6) for (const [n, t] of ctx.params) if (n.includes('lora_B')) (t.data as Float32Array).fill(0);
    } }];
  };
  await expect(expectResumeExact({ plugins: forgetful })).rejects.toThrow(KitError);
}, 60_000);

test('export: LoRA merges exactly; a plugin whose export:merge forgets the adapter is caught', async () => {
  const r = await expectExportRoundTrip({ plugins: () => [loraSmall()] });
  expect(r.merged).toBeLessThan(1e-5);
  const unmerged = (): Plugin[] => [{ ...loraSmall(), 'export:merge': (_ctx, weights) => weights }];
  await expect(expectExportRoundTrip({ plugins: unmerged })).rejects.toThrow(/merged model's logits differ/);
}, 60_000);

test('plan: the planner holds for a LoRA run measured in its own process', async () => {
  const r = await expectPlanHolds({ plugins: [{ name: 'lora', options: { r: 2, targets: ['q_proj', 'v_proj'] } }] });
  expect(Math.abs(r.error)).toBeLessThan(0.15);
}, 60_000);
