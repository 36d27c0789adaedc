/** LoRA gradients on stories260k against the reference (`lora_grads.safetensors`), through the `grads` code path. */
import { describe, expect, test } from 'bun:test';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { computeGrads } from '../../cli/grads.ts';
import { readAll } from '../../core/index.ts';
import { maxRelError } from './fixtures.ts';

const SHARED = join(import.meta.dir, '../../../shared');
const MODEL = join(SHARED, 'models/stories260k');
const FIX = join(SHARED, 'fixtures/stories260k');
const missing = !existsSync(FIX);
if (missing) console.warn(`skipping LoRA parity: ${FIX} is absent`);

describe.skipIf(missing)('grads command numerics', () => {
  test('full-model gradients reproduce full_grads.safetensors', async () => {
    const out = join(mkdtempSync(join(tmpdir(), 'grads-')), 'full.safetensors');
    await computeGrads({ model: MODEL, batch: join(FIX, 'batch.safetensors'), out });
    const [ours, ref] = await Promise.all([readAll(out), readAll(join(FIX, 'full_grads.safetensors'))]);
    const expected = JSON.parse(await Bun.file(join(FIX, 'expected.json')).text());
    expect(Math.abs(Number(ours.get('loss')!.data[0]) - expected.loss)).toBeLessThan(1e-4);
    for (const [name, r] of ref) expect(maxRelError(ours.get(name)!.data as Float32Array, r.data as Float32Array)).toBeLessThan(1e-3);
    expect(ours.size).toBe(ref.size + 1);
  });

  test('LoRA gradients reproduce lora_grads.safetensors', async () => {
    const out = join(mkdtempSync(join(tmpdir(), 'grads-')), 'lora.safetensors');
    await computeGrads({ model: MODEL, batch: join(FIX, 'batch.safetensors'), lora: join(FIX, 'lora_adapter'), out });
    const [ours, ref] = await Promise.all([readAll(out), readAll(join(FIX, 'lora_grads.safetensors'))]);
    const expected = JSON.parse(await Bun.file(join(FIX, 'expected.json')).text());
    expect(Math.abs(Number(ours.get('loss')!.data[0]) - expected.lora_loss)).toBeLessThan(1e-4);
    expect(ref.size).toBe(70);
    let worst = 0;
    for (const [name, r] of ref) worst = Math.max(worst, maxRelError(ours.get(name)!.data as Float32Array, r.data as Float32Array));
    console.log(`LoRA gradients: worst per-tensor relative error ${worst.toExponential(2)} over ${ref.size} tensors`);
    expect(worst).toBeLessThan(1e-3);
  });
});
