/**
 * The command line end to end, in child processes as a user runs it: `train` from a JSON config writes metrics, the
 * loss chart, checkpoints and exports; `eval` and `export` work from the run's latest checkpoint; bad usage exits 2
 * with the usage line; a missing config file exits 1 with a message naming it.
 */
import { afterAll, describe, expect, test } from 'bun:test';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { readAll } from '../../core/index.ts';
import { readJsonl, removeTempDirs, REPO, SHARED, STORIES, storiesMissing, tempDir, writeTinyData } from './helpers.ts';

const PEFT_PREFIX_DIR = join(SHARED, 'fixtures/stories260k/peft/prefix_tuning');

afterAll(removeTempDirs);

const missing = storiesMissing('CLI tests');
const MAIN = join(REPO, 'cli', 'main.ts');

async function cli(args: string[], cwd: string): Promise<{ code: number; stdout: string; stderr: string }> {
  const child = Bun.spawn([process.execPath, 'run', MAIN, ...args], { cwd, stdout: 'pipe', stderr: 'pipe', env: { ...process.env, NO_COLOR: '1' } });
  const [stdout, stderr, code] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text(), child.exited]);
  return { code, stdout, stderr };
}

describe('tuneforge CLI', () => {
  test('bad usage exits 2 with the usage line', async () => {
    const dir = tempDir('cli-usage');
    const [noConfig, badFlag, badNumber, unknown] = await Promise.all([
      cli(['train'], dir),
      cli(['train', '--config', 'x.json', '--bogus'], dir),
      cli(['eval', '--config', 'x.json', '--steps', 'many'], dir),
      cli(['trian'], dir),
    ]);
    expect(noConfig.code).toBe(2);
    expect(noConfig.stderr).toContain('train: missing --config');
    expect(noConfig.stderr).toContain('usage: tuneforge train --config <file.ts|file.json>');
    expect(badFlag.code).toBe(2);
    expect(badFlag.stderr).toContain("'--bogus'");
    expect(badFlag.stderr).toContain('usage: tuneforge train --config');
    expect(badNumber.code).toBe(2);
    expect(badNumber.stderr).toContain("--steps must be a number, got 'many'");
    expect(badNumber.stderr).toContain('usage: tuneforge eval --config');
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain("unknown command 'trian'");
    expect(unknown.stderr).toContain('usage: tuneforge <command> [options]');
  }, 20_000);

  test('a missing config file exits 1 and names the file', async () => {
    const dir = tempDir('cli-missing');
    const r = await cli(['train', '--config', 'nowhere.json'], dir);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`train failed: config file ${join(dir, 'nowhere.json')} does not exist`);
  }, 20_000);

  test.skipIf(missing)('train, then eval and export from the run', async () => {
    const dir = tempDir('cli-run');
    writeTinyData(dir);
    const configPath = join(dir, 'tiny.json');
    writeFileSync(configPath, JSON.stringify({
      model: STORIES, output: 'runs/tiny', seed: 2,
      data: { train: 'train.jsonl', maxLength: 32, evalFraction: 0.25 },
      train: { steps: 100, batchSize: 4, lr: 1e-2 },
      eval: { batchSize: 8 },
      checkpoint: { every: 2 },
      plugins: [{ name: 'lora', options: { r: 2, targets: ['q_proj', 'v_proj'] } }],
    }));
    const runDir = join(dir, 'runs', 'tiny');

    // --steps overrides the config's 100 steps; the config's relative paths are taken from its folder, not the cwd.
    const trained = await cli(['train', '--config', configPath, '--steps', '4'], REPO);
    expect(trained.stderr).not.toContain('failed');
    expect(trained.code).toBe(0);
    expect(trained.stdout).toContain('trained 4 steps');
    const records = readJsonl(join(runDir, 'metrics.jsonl'));
    const steps = records.filter((r) => 'loss' in r);
    expect(steps.map((r) => r.step)).toEqual([1, 2, 3, 4]);
    for (const r of steps) {
      for (const key of ['loss', 'lr', 'tok_s']) expect(Number.isFinite(r[key])).toBe(true);
      expect(r.loss).toBeGreaterThan(0);
      expect(r.tok_s).toBeGreaterThan(0);
    }
    const finalEval = records.at(-1)!;
    expect(finalEval.step).toBe(4);
    expect(finalEval.eval_loss).toBeGreaterThan(0);
    expect(readFileSync(join(runDir, 'loss.svg'), 'utf8')).toStartWith('<svg');
    expect(readFileSync(join(runDir, 'checkpoints', 'latest'), 'utf8').trim()).toBe('step-000004');
    const adapterFile = join(runDir, 'export', 'adapter', 'adapter_model.safetensors');
    const modelFile = join(runDir, 'export', 'model', 'model.safetensors');
    expect(existsSync(join(runDir, 'export', 'model', 'config.json'))).toBe(true);
    const adapterBytes = readFileSync(adapterFile), modelBytes = readFileSync(modelFile);

    // eval scores the latest checkpoint: the held-out loss the run reported at its end.
    const evaluated = await cli(['eval', '--config', configPath], dir);
    expect(evaluated.code).toBe(0);
    expect(evaluated.stderr).toContain('step-000004');
    const evalLoss = Number(evaluated.stdout.match(/^eval_loss (\S+)$/m)?.[1]);
    expect(Math.abs(evalLoss - finalEval.eval_loss!)).toBeLessThan(1e-4);

    // export rewrites the same files from the checkpoint.
    rmSync(join(runDir, 'export'), { recursive: true });
    const exported = await cli(['export', '--config', configPath], dir);
    expect(exported.code).toBe(0);
    expect(exported.stdout.split('\n')).toContain(adapterFile);
    expect(exported.stdout.split('\n')).toContain(modelFile);
    expect(readFileSync(adapterFile).equals(adapterBytes)).toBe(true);
    expect(readFileSync(modelFile).equals(modelBytes)).toBe(true);
  }, 40_000);

  test.skipIf(missing || !existsSync(PEFT_PREFIX_DIR))('--adapter: train continues a PEFT prefix folder, eval and generate apply it', async () => {
    const dir = tempDir('cli-adapter');
    writeTinyData(dir);
    const configPath = join(dir, 'tiny.json');
    writeFileSync(configPath, JSON.stringify({
      model: STORIES, output: 'runs/tiny', seed: 2,
      data: { train: 'train.jsonl', maxLength: 32, evalFraction: 0.25 },
      train: { steps: 3, batchSize: 4, lr: 1e-3 },
      plugins: [{ name: 'prefix', options: { virtualTokens: 2 } }],
    }));
    const base = await cli(['eval', '--config', configPath], dir);
    const withAdapter = await cli(['eval', '--config', configPath, '--adapter', PEFT_PREFIX_DIR], dir);
    expect(withAdapter.code).toBe(0);
    expect(withAdapter.stderr).toContain("--adapter: PREFIX_TUNING from");
    const loss = (r: { stdout: string }) => Number(r.stdout.match(/^eval_loss (\S+)$/m)?.[1]);
    expect(Number.isFinite(loss(withAdapter))).toBe(true);
    expect(Math.abs(loss(withAdapter) - loss(base))).toBeGreaterThan(1e-3); // the 5-slot fixture prefix, not the config's 2 slots

    const trained = await cli(['train', '--config', configPath, '--adapter', PEFT_PREFIX_DIR], dir);
    expect(trained.code).toBe(0);
    expect(trained.stderr).toContain("replaces the config's tuneforge:prefix options");
    const start = (await readAll(join(PEFT_PREFIX_DIR, 'adapter_model.safetensors'))).get('prompt_embeddings')!.data as Float32Array;
    const end = (await readAll(join(dir, 'runs', 'tiny', 'export', 'adapter', 'adapter_model.safetensors'))).get('prompt_embeddings')!.data as Float32Array;
    expect(end.length).toBe(start.length);
    let moved = 0;
    for (let i = 0; i < end.length; i++) moved = Math.max(moved, Math.abs(end[i]! - start[i]!));
    expect(moved).toBeGreaterThan(0);
    expect(moved).toBeLessThan(0.05); // 3 AdamW steps of 1e-3 from the file's values, not from a fresh start

    const generated = await cli(['generate', '--model', STORIES, '--prompt', 'Once upon a time', '--adapter', PEFT_PREFIX_DIR, '--max-new-tokens', '8'], dir);
    expect(generated.code).toBe(0);
    expect(generated.stdout).toStartWith('Once upon a time');
  }, 60_000);
});
