/**
 * The CLI under Deno (a dev dependency, as Bun is): `train` with a JSON and a TS config, `plan` and `generate` on a
 * tiny model, with the same results as under Bun. Skipped without a Deno binary.
 */
import { afterAll, describe, expect, test } from 'bun:test';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeTinyDataset, writeTinyLlama } from '../../testing/index.ts';
import { removeTempDirs, REPO, tempDir } from './helpers.ts';

const DENO = process.env.TUNEFORGE_DENO ?? join(REPO, 'node_modules/.bin/deno');
const CLI = join(REPO, 'cli/main.ts');
const missing = existsSync(DENO) ? undefined : `no Deno at ${DENO} (npm i -D deno, or set TUNEFORGE_DENO)`;
if (missing) console.warn(`deno cli: skipping: ${missing}`);
afterAll(removeTempDirs);

/** Runs the CLI with a runtime's command line in `cwd`; fails with its output unless it exits 0. */
async function cli(runtime: string[], args: string[], cwd: string): Promise<string> {
  const p = Bun.spawn([...runtime, CLI, ...args], { cwd, stdout: 'pipe', stderr: 'pipe', env: { ...process.env, NO_COLOR: '1' } });
  const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  if (code !== 0) throw new Error(`${runtime[0]} ${args.join(' ')} exited ${code}:\n${out}\n${err}`);
  return out;
}
const deno = [DENO, 'run', '--quiet', '-A'];
const bun = [process.execPath];

describe.skipIf(missing !== undefined)('the CLI under Deno', () => {
  test('train (JSON and TS configs), plan and generate run, and match Bun', async () => {
    const dir = tempDir('deno-cli');
    await writeTinyLlama(join(dir, 'tiny'));
    writeTinyDataset(dir);
    const config = (output: string) => ({ model: './tiny', output, data: { train: './train.jsonl', maxLength: 32 }, train: { steps: 3, batchSize: 4 }, plugins: [{ name: 'lora', options: { r: 2, targets: ['q_proj'] } }] });
    writeFileSync(join(dir, 'deno.json'), JSON.stringify(config('./runs/deno')));
    writeFileSync(join(dir, 'bun.json'), JSON.stringify(config('./runs/bun')));
    expect(await cli(deno, ['train', '--config', 'deno.json'], dir)).toContain('trained 3 steps');
    await cli(bun, ['train', '--config', 'bun.json'], dir);
    // The same steps on the same onnxruntime: the losses agree to the last bit.
    const losses = (run: string) => readFileSync(join(dir, 'runs', run, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { loss?: number }).filter((r) => r.loss !== undefined).map((r) => r.loss);
    expect(losses('deno').length).toBe(3);
    expect(losses('deno')).toEqual(losses('bun'));

    writeFileSync(join(dir, 'train.config.ts'), [
      `import { defineConfig } from ${JSON.stringify(join(REPO, 'core/index.ts'))};`,
      `import { lora } from ${JSON.stringify(join(REPO, 'plugins/index.ts'))};`,
      "export default defineConfig({ model: './tiny', output: './runs/ts', data: { train: './train.jsonl', maxLength: 32 }, train: { steps: 2, batchSize: 4 }, plugins: [lora({ r: 2, targets: ['q_proj'] })] });",
    ].join('\n'));
    expect(await cli(deno, ['train', '--config', 'train.config.ts'], dir)).toContain('trained 2 steps');

    const plan = (runtime: string[]) => cli(runtime, ['plan', '--config', 'deno.json', '--json'], dir).then((o) => JSON.parse(o) as { totalBytes: number });
    const [p1, p2] = [await plan(deno), await plan(bun)];
    expect(p1.totalBytes).toBeGreaterThan(0);
    expect(p1.totalBytes).toBe(p2.totalBytes);

    const generate = (runtime: string[]) => cli(runtime, ['generate', '--model', './runs/deno/export/model', '--prompt', 'Once', '--max-new-tokens', '8'], dir);
    const text = await generate(deno);
    expect(text.trim().length).toBeGreaterThan('Once'.length);
    expect(text).toBe(await generate(bun));
  }, 180_000);
});
