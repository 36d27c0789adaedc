/** stories260k against the independent reference implementation's numbers in ../shared/fixtures. */
import { describe, expect, test } from 'bun:test';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { compile, gradName, trace, valueAndGrad } from '../../core/index.ts';
import { readAll } from '../../core/io/safetensors.ts';
import { fixtureBatch, maxRelError } from './fixtures.ts';
import { buildCausalLM, causalLMLoss } from '../../core/models/llama.ts';
import { loadModel } from '../../core/models/load.ts';

const SHARED = join(import.meta.dir, '../../../shared');
const MODEL = join(SHARED, 'models/stories260k');
const FIX = join(SHARED, 'fixtures/stories260k');
const missing = !existsSync(FIX) || !existsSync(MODEL);
if (missing) console.warn(`skipping stories260k parity tests: ${SHARED} is absent`);

describe.skipIf(missing)('stories260k parity with the reference', () => {
  test('logits and loss', async () => {
    const { config, weights } = await loadModel(MODEL);
    const expected = JSON.parse(await Bun.file(join(FIX, 'expected.json')).text());
    const graph = trace((g) => {
      const m = buildCausalLM(g, config, { batch: 2, seq: 36 });
      return { logits: m.logits, loss: causalLMLoss(g, m) };
    });
    const exe = await compile(graph, { resident: weights });
    const out = await exe.run(await fixtureBatch());
    const ref = (await readAll(join(FIX, 'logits.safetensors'))).get('logits')!;
    const logits = out.logits!.data as Float32Array;
    let maxAbs = 0;
    for (let i = 0; i < logits.length; i++) maxAbs = Math.max(maxAbs, Math.abs(logits[i]! - (ref.data as Float32Array)[i]!));
    expect(maxAbs).toBeLessThan(1e-4);
    expect(Math.abs(Number(out.loss!.data[0]) - expected.loss)).toBeLessThan(1e-4);
    await exe.release();
  });

  test('full-model gradients', async () => {
    const { config, weights } = await loadModel(MODEL);
    const graph = trace((g) => {
      const m = buildCausalLM(g, config, { batch: 2, seq: 36 });
      return { loss: causalLMLoss(g, m) };
    });
    const names = [...weights.keys()];
    const exe = await compile(valueAndGrad(graph, { of: 'loss', wrt: names }));
    const out = await exe.run({ ...Object.fromEntries(weights), ...(await fixtureBatch()) });
    const ref = await readAll(join(FIX, 'full_grads.safetensors'));
    expect(ref.size).toBe(names.length);
    let worst = 0;
    for (const name of names) worst = Math.max(worst, maxRelError(out[gradName(name)]!.data as Float32Array, ref.get(name)!.data as Float32Array));
    expect(worst).toBeLessThan(1e-3);
    await exe.release();
  });
});
