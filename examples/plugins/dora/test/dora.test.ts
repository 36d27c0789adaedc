/**
 * DoRA through tuneforge's plugin kit: gradients against finite differences (the norm held constant, as the
 * backward pass treats it), the start equal to the base model, the PEFT export reloading to the same logits and the
 * merged export equal to the adapter on the base model, exact resume, the planner, and composition with LoRA, NF4
 * and the zeroth-order estimator.
 */
import { expect, test } from 'bun:test';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { readAll } from 'tuneforge';
import { fullFinetune } from 'tuneforge/plugins';
import { checkComposition, expectExportRoundTrip, expectGradients, expectPlanHolds, expectResumeExact, kitLogits, kitModel, maxRelDiff } from 'tuneforge/testing';
import { dora, doraFromAdapter } from '../src/index.ts';

const small = () => [dora({ r: 2, alpha: 4, targets: ['q_proj', 'v_proj', 'down_proj'] })];

test('gradients match finite differences (with the row norm held constant)', async () => {
  const r = await expectGradients({ plugins: small });
  expect(r.rows.length).toBe(2 * 3 * 3 * 2); // 2 layers x 3 targets x (A, B, m) x 2 directions
  if (process.env.TUNEFORGE_KIT_LOG) console.log(r.table);
}, 60_000);

test('starts as the base model: B = 0 and m = ‖W‖ leave every logit unchanged', async () => {
  const model = await kitModel();
  const base = await kitLogits(model, [fullFinetune()]);
  expect(maxRelDiff(await kitLogits(model, small()), base)).toBeLessThan(1e-5);
});

test('the PEFT adapter (use_dora, lora_magnitude_vector) reloads to the same logits; the merged model equals it', async () => {
  const r = await expectExportRoundTrip({ plugins: small, reload: async (dir) => [await doraFromAdapter(join(dir, 'adapter'))] });
  expect(r.merged).toBeLessThan(1e-4);
  expect(r.reloaded).toBeLessThan(1e-6);
  const config = JSON.parse(readFileSync(join(r.exportDir, 'adapter', 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
  expect(config).toMatchObject({ peft_type: 'LORA', use_dora: true, r: 2, lora_alpha: 4, target_modules: ['q_proj', 'v_proj', 'down_proj'] });
  const keys = [...(await readAll(join(r.exportDir, 'adapter', 'adapter_model.safetensors'))).keys()];
  expect(keys).toContain('base_model.model.model.layers.0.self_attn.q_proj.lora_magnitude_vector');
  expect(keys).toContain('base_model.model.model.layers.1.mlp.down_proj.lora_A.weight');
  expect(keys.length).toBe(2 * 3 * 3);
}, 60_000);

test('kill and resume give identical weights', async () => {
  expect((await expectResumeExact({ plugins: small })).tensors).toBe(18);
}, 60_000);

test('the planner holds for a short run in its own process', async () => {
  const r = await expectPlanHolds({ plugins: [{ name: join(import.meta.dir, '..', 'src', 'index.ts'), options: { r: 2, alpha: 4 } }] });
  expect(r.measuredMb).toBeGreaterThan(50);
}, 60_000);

test('composes with LoRA (on the MLP), an NF4 base and the zeroth-order estimator', async () => {
  const results = await checkComposition({ plugins: () => [dora({ r: 2, alpha: 4, targets: ['q_proj', 'v_proj'] })] });
  expect(results.map((r) => `${r.partner}:${r.outcome}`)).toEqual(['lora:trained', 'nf4:trained', 'zo:trained']);
}, 90_000);
