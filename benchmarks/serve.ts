/**
 * bench:serve — what the fine-tuning service costs on top of the trainer, and how its list endpoint holds up.
 *
 * 1. Overhead: the same LoRA run on stories260k (a chat JSONL, `--steps` steps, batch 4, seed 3) three ways in one
 *    command, alternating: `train()` in a child process as the CLI runs it, and a job through `tuneforge serve`
 *    (upload, create, poll until succeeded) on a server started by this script. The ratio is service wall time over
 *    CLI wall time, per round and the median; the service adds upload, validation, a worker process, events,
 *    checkpoint bookkeeping and result archives.
 * 2. List latency: `--clients` concurrent clients each calling `GET /v1/fine_tuning/jobs?limit=20` `--requests`
 *    times against a store holding `--jobs` jobs; p50 / p95 / p99 in milliseconds and requests per second.
 *
 *   bun run bench:serve                       # 3 rounds of 30 steps, 32 clients x 50 requests over 500 jobs
 *   bun run bench:serve --rounds 1 --steps 10 --requests 10
 *
 * Options (also SERVE_<NAME>): --rounds N, --steps N, --clients N, --requests N, --jobs N.
 * Prints a table and ends with one JSON line:
 *   {"overhead_ratio", "rounds": [{"cli_s", "service_s", "ratio"}], "list": {"p50_ms", "p95_ms", "p99_ms", "rps", "clients", "jobs"}}
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import OpenAI, { toFile } from 'openai';
import { startServer } from '../server/serve.ts';
import { job } from '../server/store/conformance.ts';
import { chatJsonl, until } from '../server/test-helpers.ts';
import { benchOptions } from './lib/options.ts';
import { reportToParent, runChild } from './lib/child.ts';

const ROOT = resolve(import.meta.dir, '..');
const STORIES = resolve(ROOT, '../shared/models/stories260k');
const KEY = 'bench-key-0123456789abcdef';
const TAG = '@@serve-result ';
const opts = benchOptions(['rounds', 'steps', 'clients', 'requests', 'jobs', 'child'], 'SERVE');
const steps = opts.number('steps') ?? 30;

/** The child: the run as `tuneforge train` would do it, timed from process start to return. */
const childArg = opts.string('child');
if (childArg !== undefined) {
  const t0 = performance.now();
  const { parseTrainConfig } = await import('../core/train/config.ts');
  const { train } = await import('../core/train/trainer.ts');
  const { lora } = await import('../plugins/index.ts');
  const dir = childArg;
  const data = join(dir, 'chats.jsonl');
  writeFileSync(data, chatJsonl());
  const config = parseTrainConfig({ model: STORIES, output: join(dir, 'run'), seed: 3, data: { train: data }, train: { steps, batchSize: 4, lr: 2e-4 }, checkpoint: { every: 0 } });
  await train({ config, plugins: [lora({ r: 8, alpha: 16, targets: 'all-linear' })], resume: false, log: () => {}, progress: { isTTY: false, write: () => true } });
  reportToParent(TAG, { seconds: (performance.now() - t0) / 1000 });
}

const rounds = opts.number('rounds') ?? 3;
const server = await startServer({ home: mkdtempSync(join(tmpdir(), 'tuneforge-bench-serve-')), port: 0, apiKeys: [KEY], allowModels: [STORIES], pollMs: 50 }, () => {});
const client = new OpenAI({ apiKey: KEY, baseURL: `${server.url}/v1`, maxRetries: 0 });
const results: { cli_s: number; service_s: number; ratio: number }[] = [];
for (let r = 0; r < rounds; r++) {
  const cli = await runChild<{ seconds: number }>(import.meta.path, ['--child', mkdtempSync(join(tmpdir(), 'tuneforge-bench-cli-')), '--steps', String(steps)], TAG, { cwd: ROOT });
  const t0 = performance.now();
  const file = await client.files.create({ file: await toFile(Buffer.from(chatJsonl()), 'chats.jsonl'), purpose: 'fine-tune' });
  const created = await client.fineTuning.jobs.create({ model: 'stories260k', training_file: file.id, seed: 3, method: { type: 'supervised', supervised: { hyperparameters: { batch_size: 4 } } }, tuneforge: { plugins: [{ name: 'lora', options: { r: 8, alpha: 16, targets: 'all-linear' } }], train: { steps } } } as never);
  const done = await until('the job', async () => {
    const j = await client.fineTuning.jobs.retrieve(created.id);
    return ['succeeded', 'failed', 'cancelled'].includes(j.status) ? j : undefined;
  }, 600_000);
  if (done.status !== 'succeeded') throw new Error(`job ${done.id} ${done.status}: ${done.error?.message}`);
  const service = (performance.now() - t0) / 1000;
  results.push({ cli_s: cli.seconds, service_s: service, ratio: service / cli.seconds });
  console.error(`round ${r + 1}: CLI ${cli.seconds.toFixed(2)} s, service ${service.toFixed(2)} s`);
}

// List latency over a store with many jobs (inserted directly: their training is not what is measured).
const jobs = opts.number('jobs') ?? 500;
for (let i = 0; i < jobs; i++) await server.svc.store.createJob(job({ status: 'succeeded', metadata: { i: String(i) } }));
const clients = opts.number('clients') ?? 32, requests = opts.number('requests') ?? 50;
const latencies: number[] = [];
const t0 = performance.now();
await Promise.all(Array.from({ length: clients }, async () => {
  for (let k = 0; k < requests; k++) {
    const s = performance.now();
    const r = await fetch(`${server.url}/v1/fine_tuning/jobs?limit=20`, { headers: { authorization: `Bearer ${KEY}` } });
    await r.arrayBuffer();
    if (!r.ok) throw new Error(`list: HTTP ${r.status}`);
    latencies.push(performance.now() - s);
  }
}));
const wall = (performance.now() - t0) / 1000;
await server.stop();

latencies.sort((a, b) => a - b);
const q = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))]!;
const ratios = results.map((r) => r.ratio).sort((a, b) => a - b);
const median = ratios[Math.floor(ratios.length / 2)]!;
console.log('round  CLI s   service s  ratio');
results.forEach((r, i) => console.log(`${String(i + 1).padEnd(6)} ${r.cli_s.toFixed(2).padStart(6)}  ${r.service_s.toFixed(2).padStart(9)}  ${r.ratio.toFixed(3)}`));
console.log(`median service / CLI: ${median.toFixed(3)} (${steps} steps of LoRA on stories260k)`);
console.log(`GET /v1/fine_tuning/jobs?limit=20, ${clients} clients x ${requests}, ${jobs} jobs stored: p50 ${q(0.5).toFixed(1)} ms, p95 ${q(0.95).toFixed(1)} ms, p99 ${q(0.99).toFixed(1)} ms, ${(latencies.length / wall).toFixed(0)} req/s`);
console.log(JSON.stringify({ overhead_ratio: +median.toFixed(4), rounds: results, list: { p50_ms: +q(0.5).toFixed(2), p95_ms: +q(0.95).toFixed(2), p99_ms: +q(0.99).toFixed(2), rps: +(latencies.length / wall).toFixed(1), clients, requests, jobs } }));
process.exit(0);
