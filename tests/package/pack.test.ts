/**
 * tuneforge as a user installs it: the repository packed with `npm pack`, the DoRA example plugin packed too, both
 * installed into a fresh project that cannot see the repository's sources, and used there: a TS config importing
 * `tuneforge`, `bunx tuneforge train` and `npx tuneforge train` (the Node launcher handing over to Bun), DoRA from a
 * JSON config by package name, `tuneforge plugins` finding it, a scaffolded plugin passing its own tests, and an HTTP
 * job naming DoRA refused by a server that does not allow it and run by one that does.
 *
 * npm installs from its cache (`--prefer-offline`): after the repository's own `npm ci` nothing is downloaded.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import OpenAI, { toFile } from 'openai';
import { chatJsonl, until } from '../../server/test-helpers.ts';

const REPO = join(import.meta.dir, '..', '..');
const DORA = join(REPO, 'examples', 'plugins', 'dora');
const npm = Bun.which('npm');
if (!npm) console.warn('skipping the packaging tests: npm is not on PATH');
const keep = process.env.TUNEFORGE_TEST_KEEP === '1';

/** Our Bun first on PATH, so `bunx`/`npx` and the launcher find it; nothing of the repository besides. */
const env = { ...process.env, PATH: `${dirname(process.execPath)}${delimiter}${process.env.PATH ?? ''}`, NO_COLOR: '1' };

async function sh(cmd: string[], cwd: string, timeoutMs = 120_000): Promise<{ code: number; stdout: string; stderr: string }> {
  const child = Bun.spawn(cmd, { cwd, env, stdout: 'pipe', stderr: 'pipe' });
  const timer = setTimeout(() => child.kill(), timeoutMs);
  const [stdout, stderr, code] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text(), child.exited]);
  clearTimeout(timer);
  return { code, stdout, stderr };
}

async function ok(cmd: string[], cwd: string, timeoutMs?: number): Promise<string> {
  const r = await sh(cmd, cwd, timeoutMs);
  if (r.code !== 0) throw new Error(`${cmd.join(' ')} (in ${cwd}) exited ${r.code}:\n${r.stderr.slice(-3000)}\n${r.stdout.slice(-2000)}`);
  return r.stdout;
}

const bunx = (...args: string[]) => [process.execPath, 'x', ...args];

describe.skipIf(!npm)('the packed package in a fresh project', () => {
  const work = mkdtempSync(join(tmpdir(), 'tuneforge-pack-'));
  const project = join(work, 'project');
  let tarball = '';

  beforeAll(async () => {
    tarball = join(work, (await ok([npm!, 'pack', '--pack-destination', work, '--silent'], REPO)).trim().split('\n').at(-1)!);
    const dora = join(work, (await ok([npm!, 'pack', '--pack-destination', work, '--silent'], DORA)).trim().split('\n').at(-1)!);
    await ok(['mkdir', '-p', project], work);
    writeFileSync(join(project, 'package.json'), JSON.stringify({
      name: 'user-project', private: true, type: 'module',
      dependencies: { tuneforge: `file:${tarball}`, 'tuneforge-plugin-dora': `file:${dora}` },
    }, null, 2));
    // --ignore-scripts: onnxruntime-node's install script only fetches its CUDA files (from outside the npm registry).
    await ok([npm!, 'install', '--prefer-offline', '--ignore-scripts', '--no-audit', '--no-fund', '--loglevel=error'], project, 300_000);
    // The tiny model and data come from the installed package's own kit.
    writeFileSync(join(project, 'setup.ts'), "import { writeTinyLlama, writeTinyDataset } from 'tuneforge/testing';\nawait writeTinyLlama('./tiny');\nwriteTinyDataset('.');\n");
    await ok([process.execPath, 'setup.ts'], project);
  }, 400_000);

  afterAll(() => {
    if (!keep) rmSync(work, { recursive: true, force: true });
  });

  test('the tarball holds the library and its command, not the tests, benchmarks or docs', async () => {
    const files = (await ok(['tar', '-tzf', tarball], work)).split('\n');
    for (const f of ['package/core/index.ts', 'package/plugins/index.ts', 'package/testing/index.ts', 'package/bin/tuneforge.js', 'package/cli/main.ts']) expect(files).toContain(f);
    expect(files.filter((f) => /\.test\.ts$|^package\/(tests|benchmarks|docs|examples)\/|test-helpers/.test(f))).toEqual([]);
  });

  test('a TS config importing tuneforge trains with bunx tuneforge; a JSON config names DoRA by package, through npx', async () => {
    writeFileSync(join(project, 'train.config.ts'), [
      "import { defineConfig } from 'tuneforge';",
      "import { dora } from 'tuneforge-plugin-dora';",
      'export default defineConfig({',
      "  model: './tiny', output: './runs/ts', data: { train: './train.jsonl', maxLength: 32, validationFraction: 0.2 },",
      "  train: { steps: 4, batchSize: 4, lr: 1e-2 }, eval: { every: 2 }, checkpoint: { best: { metric: 'val_loss' } },",
      "  plugins: [dora({ r: 2, alpha: 4, targets: ['q_proj', 'v_proj'] })],",
      '});',
    ].join('\n'));
    const out = await ok(bunx('tuneforge', 'train', '--config', 'train.config.ts'), project);
    expect(out).toContain('trained 4 steps');
    const adapter = JSON.parse(readFileSync(join(project, 'runs', 'ts', 'export', 'adapter', 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
    expect(adapter).toMatchObject({ peft_type: 'LORA', use_dora: true, r: 2 });
    expect(readFileSync(join(project, 'runs', 'ts', 'report.html'), 'utf8')).toContain('data-chart="loss"');

    writeFileSync(join(project, 'train.json'), JSON.stringify({
      model: './tiny', output: './runs/json', data: { train: './train.jsonl', maxLength: 32 }, train: { steps: 3, batchSize: 4 },
      plugins: [{ name: 'tuneforge-plugin-dora', options: { r: 2, targets: ['q_proj'] } }],
    }));
    const viaNode = await ok([npm!, 'exec', '--offline', '--', 'tuneforge', 'train', '--config', 'train.json'], project);
    expect(viaNode).toContain('trained 3 steps');
  }, 180_000);

  test("the runners' exports: a step compiled in-process and through a loopback sidecar give the same bits", async () => {
    writeFileSync(join(project, 'runners.ts'), [
      "import { compile, op, trace } from 'tuneforge';",
      "import { ortNodeRunner, startSidecar } from 'tuneforge/runners';",
      "import { sidecar } from 'tuneforge/runners/sidecar';",
      "import { ortWebRunner } from 'tuneforge/runners/web';",
      "const graph = () => trace((g) => ({ y: op.exp(g.input('x', 'float32', [4])) }));",
      "const x = { dtype: 'float32' as const, shape: [4], data: Float32Array.of(0, 1, 2, 3) };",
      "const token = 'a-test-token-0123456789';",
      "const server = await startSidecar({ hostname: '127.0.0.1', port: 0, provider: 'cpu', token });",
      'const outs = [];',
      "for (const runner of [ortNodeRunner(), sidecar(server.url, { token }), ortWebRunner()]) {",
      '  const exe = await compile(graph(), { runner });',
      '  outs.push(Array.from((await exe.run({ x })).y!.data as Float32Array));',
      '  await exe.release();',
      '}',
      'await server.stop();',
      'console.log(JSON.stringify(outs));',
    ].join('\n'));
    const [local, remote, web] = JSON.parse((await ok([process.execPath, 'runners.ts'], project)).trim().split('\n').at(-1)!) as number[][];
    expect(remote).toEqual(local!);
    expect(local![3]).toBeCloseTo(Math.exp(3), 5);
    for (let i = 0; i < 4; i++) expect(web![i]).toBeCloseTo(local![i]!, 5);
  }, 60_000);

  test('tuneforge plugins lists the installed DoRA package with its options', async () => {
    const listed = JSON.parse(await ok(bunx('tuneforge', 'plugins', '--json'), project)) as { name: string; source: string; options?: { properties?: Record<string, unknown> } }[];
    const dora = listed.find((p) => p.name === 'tuneforge-plugin-dora');
    expect(dora?.source).toBe('package');
    expect(Object.keys(dora?.options?.properties ?? {})).toEqual(['r', 'alpha', 'targets']);
    expect(listed.filter((p) => p.source === 'built-in').map((p) => p.name)).toContain('lora');
  }, 60_000);

  test('a scaffolded plugin passes its own tests straight away', async () => {
    await ok(bunx('tuneforge', 'new', 'plugin', 'tuneforge-plugin-ia3'), project);
    const r = await sh([process.execPath, 'test'], join(project, 'tuneforge-plugin-ia3'), 240_000);
    expect(`${r.stdout}${r.stderr}`).toMatch(/4 pass\s+0 fail/);
    expect(r.code).toBe(0);
  }, 300_000);

  test('an HTTP job naming DoRA: refused without --allow-plugin, trained with it', async () => {
    const key = 'pack-test-key-0123456789';
    for (const allow of [false, true]) {
      const port = 20_000 + Math.floor(Math.random() * 20_000);
      const args = ['serve', '--port', String(port), '--home', join(work, `home-${allow}`), '--allow-model', join(project, 'tiny'), ...(allow ? ['--allow-plugin', 'tuneforge-plugin-dora'] : [])];
      // The installed command run by Bun directly: one process, so stopping it stops the server.
      const server = Bun.spawn([process.execPath, join(project, 'node_modules', '.bin', 'tuneforge'), ...args], { cwd: project, env: { ...env, TUNEFORGE_API_KEYS: key }, stdout: 'ignore', stderr: 'ignore' });
      try {
        const client = new OpenAI({ apiKey: key, baseURL: `http://127.0.0.1:${port}/v1`, maxRetries: 0 });
        await until('the server to listen', () => client.models.list().then(() => true, () => undefined), 60_000);
        const file = await client.files.create({ file: await toFile(Buffer.from(chatJsonl()), 'chats.jsonl'), purpose: 'fine-tune' });
        const create = () => client.fineTuning.jobs.create({
          model: 'tiny', training_file: file.id,
          // @ts-expect-error the tuneforge extension is not in OpenAI's types
          tuneforge: { plugins: [{ name: 'tuneforge-plugin-dora', options: { r: 2, targets: ['q_proj'] } }], train: { steps: 3, lr: 1e-2 } }, // a package has no default lr
        });
        if (!allow) {
          const err = await create().then(() => undefined, (e: unknown) => e as { status?: number; message: string });
          expect(err?.status).toBe(400);
          expect(err?.message).toContain("plugin 'tuneforge-plugin-dora' is not available on this server");
          continue;
        }
        const job = await create();
        const done = await until('the job to finish', async () => {
          const j = await client.fineTuning.jobs.retrieve(job.id);
          return ['succeeded', 'failed', 'cancelled'].includes(j.status) ? j : undefined;
        }, 180_000);
        expect(done.error).toBeNull();
        expect(done.status).toBe('succeeded');
      } finally {
        server.kill();
        await server.exited;
      }
    }
  }, 300_000);
});
