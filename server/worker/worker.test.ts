/**
 * The job runner on stories260k: tiny runs (a few steps of LoRA on a few chats) in child processes. A run succeeds
 * with its events and exports; cancel and SIGKILL end it at once with the right outcome; pause then restart ends
 * with the weights of an uninterrupted run, bit for bit; so does a child whose service went away (stdin closed).
 */
import { afterAll, describe, expect, test } from 'bun:test';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { HostTensor } from '../../core/ir/host.ts';
import { readAll } from '../../core/io/safetensors.ts';
import type { TrainConfigInput } from '../../core/train/config.ts';
import { parseJobRequest } from '../jobs/schema.ts';
import { jobToRunConfig } from '../jobs/to-config.ts';
import { lockRunFolder, LOCK_FILE, RunBusyError } from './lock.ts';
import { encodeMessage, MESSAGE_TAG, parseMessage, forEachLine, type WorkerMessage } from './protocol.ts';
import { startJobProcess, SPEC_FILE, type JobHandlers } from './run.ts';
import type { JobOutcome, WorkerSpec } from './spec.ts';

const STORIES = join(import.meta.dir, '../../../shared/models/stories260k');
const missing = !existsSync(join(STORIES, 'config.json'));
if (missing) console.warn(`skipping the worker's training tests: the stories260k model is absent (${STORIES}); see README (../shared)`);

const created: string[] = [];
afterAll(() => {
  for (const d of created.splice(0)) rmSync(d, { recursive: true, force: true });
});
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'tuneforge-worker-test-'));
  created.push(dir);
  return dir;
}

const SUBJECTS = ['the cat', 'a dog', 'Lily', 'Tom', 'the bird'];
const ACTIONS = ['ran home', 'sat down', 'ate a cake', 'saw the sun', 'found a box', 'went to sleep', 'was happy'];

/** OpenAI chat records (with the per-turn `weight` of OpenAI's format), as JSONL. */
function writeChats(dir: string, count = 24): string {
  const lines = Array.from({ length: count }, (_, i) =>
    JSON.stringify({
      messages: [
        { role: 'user', content: `What did ${SUBJECTS[i % SUBJECTS.length]} do?` },
        { role: 'assistant', content: `It ${ACTIONS[(i * 3) % ACTIONS.length]}.`, weight: 1 },
      ],
    }),
  );
  const path = join(dir, 'train.jsonl');
  writeFileSync(path, `${lines.join('\n')}\n`);
  return path;
}

function spec(data: string, output: string, train: Record<string, unknown>, extra: Partial<TrainConfigInput> = {}): WorkerSpec {
  return {
    jobId: 'ftjob-test',
    config: {
      model: STORIES,
      output,
      seed: 7,
      data: { train: data, maxLength: 128 },
      train: { batchSize: 4, lr: 1e-3, ...train },
      checkpoint: { every: 5, keep: 2 },
      export: { merged: false },
      plugins: [{ name: 'lora', options: { r: 4, alpha: 8, dropout: 0.1, targets: 'all-linear' } }],
      ...extra,
    },
    offline: true,
  };
}

interface Recorded {
  logs: string[];
  metrics: Record<string, number>[];
  checkpoints: { step: number; dir: string; metrics: Record<string, number> }[];
  statuses: string[];
}

/** Starts a run, recording its events; `atStep` is called once, on the record of that step. */
function run(s: WorkerSpec, atStep?: { step: number; act: (p: ReturnType<typeof startJobProcess>) => void }) {
  const rec: Recorded = { logs: [], metrics: [], checkpoints: [], statuses: [] };
  let proc: ReturnType<typeof startJobProcess> | undefined;
  const handlers: JobHandlers = {
    onLog: (l) => void rec.logs.push(l),
    onMetrics: (r) => {
      rec.metrics.push(r);
      if (atStep && r.step === atStep.step && typeof r.tok_s === 'number') atStep.act(proc!);
    },
    onCheckpoint: (step, dir, metrics) => void rec.checkpoints.push({ step, dir, metrics }),
    onStatus: (st) => void rec.statuses.push(st),
  };
  proc = startJobProcess(s, handlers, { graceMs: 2000 });
  return { proc, rec, done: proc.done };
}

const adapterOf = (output: string) => join(output, 'export/adapter/adapter_model.safetensors');

function sameBytes(a: ReadonlyMap<string, HostTensor>, b: ReadonlyMap<string, HostTensor>): string[] {
  const bytes = (t: HostTensor) => new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
  const diff: string[] = [];
  for (const name of new Set([...a.keys(), ...b.keys()])) {
    const x = a.get(name), y = b.get(name);
    if (!x || !y || x.shape.join() !== y.shape.join() || Buffer.compare(bytes(x), bytes(y)) !== 0) diff.push(name);
  }
  return diff;
}

const stepRecords = (rec: Recorded) => rec.metrics.filter((r) => typeof r.tok_s === 'number');

describe.skipIf(missing)('job runner on stories260k', () => {
  test('a run succeeds: status, logs, a metrics record per step, checkpoints with their metrics, exports', async () => {
    const dir = tempDir();
    const s = spec(writeChats(dir), join(dir, 'run'), { steps: 10 });
    const { rec, done } = run(s);
    const outcome = await done;
    expect(outcome.error).toBeUndefined();
    expect(outcome.status).toBe('succeeded');
    expect(rec.statuses).toEqual(['running']);
    expect(rec.logs.some((l) => /^data: 24 training examples/.test(l))).toBe(true);
    expect(stepRecords(rec).map((r) => r.step)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(rec.checkpoints.map((c) => c.step)).toEqual([5, 10]);
    expect(rec.checkpoints[0]!.metrics.loss).toBe(stepRecords(rec)[4]!.loss!);
    expect(existsSync(join(rec.checkpoints[1]!.dir, 'COMPLETE')) || existsSync(rec.checkpoints[1]!.dir)).toBe(true);
    expect(outcome.exported).toContain(adapterOf(s.config.output!));
    expect(outcome.exported.every((f) => existsSync(f))).toBe(true);
    expect(outcome.trainedTokens).toBe(stepRecords(rec).reduce((sum, r) => sum + r.tokens!, 0));
    expect(outcome.trainedTokens).toBeGreaterThan(0);
    expect(outcome.metrics.step).toBe(10);
    expect(Number.isFinite(outcome.metrics.loss)).toBe(true);
    expect(JSON.parse(readFileSync(join(s.config.output!, SPEC_FILE), 'utf8')).jobId).toBe('ftjob-test');
    expect(existsSync(join(s.config.output!, LOCK_FILE))).toBe(false); // released
  }, 20_000);

  test('cancel mid-run: cancelled at once, nothing exported', async () => {
    const dir = tempDir();
    const s = spec(writeChats(dir), join(dir, 'run'), { steps: 400 });
    const { rec, done } = run(s, { step: 3, act: (p) => p.cancel() });
    const outcome = await done;
    expect(outcome.status).toBe('cancelled');
    expect(outcome.error).toBeUndefined();
    expect(rec.statuses).toEqual(['running', 'cancelling']);
    expect(stepRecords(rec).length).toBeLessThan(400);
    expect(outcome.exported).toEqual([]);
    expect(existsSync(join(s.config.output!, 'export'))).toBe(false);
    expect(outcome.trainedTokens).toBeGreaterThan(0); // what it did train on before it stopped
  }, 20_000);

  test('pause, then restart with the same spec: succeeded, with the weights of an uninterrupted run bit for bit', async () => {
    const dir = tempDir();
    const data = writeChats(dir);
    const straight = await run(spec(data, join(dir, 'straight'), { steps: 40 })).done;
    expect(straight.status).toBe('succeeded');

    const s = spec(data, join(dir, 'paused'), { steps: 40 });
    const first = run(s, { step: 3, act: (p) => p.pause() });
    const paused = await first.done;
    if (paused.status === 'succeeded') throw new Error('the run finished before the pause reached it: the test needs more steps');
    expect(paused.status).toBe('paused');
    expect(first.rec.statuses).toEqual(['running', 'pausing']);
    const pausedAt = paused.metrics.step!;
    expect(pausedAt).toBeGreaterThanOrEqual(3);
    expect(pausedAt).toBeLessThan(40);
    expect(first.rec.checkpoints.at(-1)!.step).toBe(pausedAt); // it checkpointed the steps it did before stopping
    expect(existsSync(join(s.config.output!, 'export'))).toBe(false);

    const second = run(s);
    const resumed = await second.done;
    expect(resumed.status).toBe('succeeded');
    expect(second.rec.logs.some((l) => new RegExp(`^resumed from .*step-0*${pausedAt} at step ${pausedAt}$`).test(l))).toBe(true);
    expect(stepRecords(second.rec)[0]!.step).toBe(pausedAt + 1);

    const a = await readAll(adapterOf(join(dir, 'straight')));
    const b = await readAll(adapterOf(s.config.output!));
    expect(a.size).toBe(5 * 7 * 2); // 5 layers x 7 linear modules x (A, B): a real comparison
    expect(sameBytes(a, b)).toEqual([]);
    expect(resumed.trainedTokens).toBe(straight.trainedTokens); // every step counted once over both processes
  }, 40_000);

  test('a child killed with SIGKILL fails the job with what happened and where it can resume', async () => {
    const dir = tempDir();
    const s = spec(writeChats(dir), join(dir, 'run'), { steps: 400 }, { checkpoint: { every: 2 } });
    const { done } = run(s, { step: 3, act: (p) => process.kill(p.pid, 'SIGKILL') });
    const outcome = await done;
    expect(outcome.status).toBe('failed');
    expect(outcome.error?.code).toBe('worker_killed');
    expect(outcome.error?.message).toMatch(/^the training process \(pid \d+\) was killed by SIGKILL \(usually the kernel's out-of-memory killer/);
    expect(outcome.error?.message).toMatch(/latest checkpoint is of step 2; a retry resumes from there/);
    expect(outcome.metrics.step).toBeGreaterThanOrEqual(3);
  }, 20_000);

  test('a child whose service went away (stdin closed) checkpoints and exits: a restart resumes', async () => {
    const dir = tempDir();
    const s = spec(writeChats(dir), join(dir, 'run'), { steps: 60 });
    writeFileSync(join(dir, 'spec.json'), JSON.stringify(s));
    const child = Bun.spawn([process.execPath, join(import.meta.dir, 'child.ts'), join(dir, 'spec.json')], { cwd: dir, stdin: 'pipe', stdout: 'pipe', stderr: 'pipe' });
    const messages: WorkerMessage[] = [];
    await forEachLine(child.stdout, (line) => {
      const m = parseMessage(line);
      if (!m) return;
      messages.push(m);
      if (m.type === 'metrics' && m.record.step === 2) void child.stdin.end();
    });
    expect(await child.exited).toBe(0);
    const result = messages.find((m) => m.type === 'result');
    expect(result).toMatchObject({ type: 'result', status: 'paused' });
    expect(messages.some((m) => m.type === 'log' && /closed the control channel/.test(m.line))).toBe(true);
    const stoppedAt = (result as { step: number }).step;
    expect(stoppedAt).toBeLessThan(60);
    expect(messages.some((m) => m.type === 'checkpoint' && m.step === stoppedAt)).toBe(true);

    const restarted = run(s);
    expect((await restarted.done).status).toBe('succeeded');
    expect(restarted.rec.logs.some((l) => l.endsWith(`at step ${stoppedAt}`) && l.startsWith('resumed from'))).toBe(true);
  }, 20_000);

  test('a mapped OpenAI request (server/jobs) trains as it is', async () => {
    const dir = tempDir();
    const parsed = parseJobRequest({
      model: 'stories260k', training_file: 'file-abc', seed: 5,
      hyperparameters: { batch_size: 4 },
      tuneforge: { train: { steps: 4 }, data: { maxLength: 128 }, export: { merged: false } },
    });
    if (!parsed.ok) throw new Error(JSON.stringify(parsed.problems));
    const mapped = jobToRunConfig(parsed.request, {
      trainingPath: writeChats(dir), outputDir: join(dir, 'run'), trainingExamples: 24,
      policy: { allowedModelDirs: [dirname(STORIES)], offline: true, allowedPlugins: [] },
      resolveModel: (name) => (name === 'stories260k' ? STORIES : undefined),
    });
    if (!mapped.ok) throw new Error(JSON.stringify(mapped.problems));
    const { rec, done } = run({ jobId: 'ftjob-mapped', config: mapped.job.config, offline: true });
    const outcome = await done;
    expect(outcome.error).toBeUndefined();
    expect(outcome.status).toBe('succeeded');
    expect(stepRecords(rec).map((r) => r.lr)[0]).toBeCloseTo(mapped.job.learningRate, 12); // linear decay from the peak
    expect(outcome.exported).toContain(adapterOf(join(dir, 'run')));
  }, 20_000);

  test('a run the trainer refuses fails with its message and a code', async () => {
    const dir = tempDir();
    const data = join(dir, 'bad.jsonl');
    writeFileSync(data, `${JSON.stringify({ question: 'no known format' })}\n`);
    const outcome = await run(spec(data, join(dir, 'run'), { steps: 2 })).done;
    expect(outcome.status).toBe('failed');
    expect(outcome.error?.code).toBe('invalid_training_file');
    expect(outcome.error?.message).toMatch(/cannot detect the record format/);
  }, 20_000);
});

describe('worker pieces', () => {
  test('a spec without an absolute output fails at once, without a process', async () => {
    const p = startJobProcess({ jobId: 'j', config: { model: 'm', output: 'runs/x' } }, {});
    expect(p.pid).toBe(-1);
    const o: JobOutcome = await p.done;
    expect(o).toMatchObject({ status: 'failed', error: { code: 'invalid_config' } });
  });

  test('the child refuses a spec whose plugins are paths, even when the request check was skipped', async () => {
    const dir = tempDir();
    const s: WorkerSpec = { jobId: 'j', config: { model: STORIES, output: join(dir, 'run'), data: { train: join(dir, 'x.jsonl') }, plugins: ['./evil.ts', 'left-pad'] } };
    const o = await startJobProcess(s, {}).done;
    expect(o.status).toBe('failed');
    expect(o.error?.code).toBe('invalid_config');
    expect(o.error?.message).toMatch(/'\.\/evil\.ts' is a path[\s\S]*'left-pad' is neither a built-in nor an allowed package/);
  }, 20_000);

  test('messages are found among other output; anything else is ignored', () => {
    const m: WorkerMessage = { type: 'checkpoint', step: 3, dir: '/x', metrics: { loss: 1 } };
    expect(parseMessage(encodeMessage(m).trimEnd())).toEqual(m);
    expect(parseMessage(`onnxruntime warning ${encodeMessage(m).trimEnd()}`)).toEqual(m); // a library's unterminated line before it
    expect(parseMessage('{"type":"log","line":"untagged"}')).toBeUndefined();
    expect(parseMessage(`${MESSAGE_TAG}{"type":"log"`)).toBeUndefined(); // cut short
    expect(parseMessage(`${MESSAGE_TAG}{"type":"nonsense"}`)).toBeUndefined();
  });

  test('one process holds a run folder; a lock left by a dead process is taken over', async () => {
    const dir = tempDir();
    const release = await lockRunFolder(dir);
    await expect(lockRunFolder(dir, 150)).rejects.toThrow(RunBusyError);
    release();
    const dead = Bun.spawnSync([process.execPath, '-e', '0']).pid; // exited: its pid is free
    writeFileSync(join(dir, LOCK_FILE), `${dead}\n`);
    const again = await lockRunFolder(dir, 150);
    expect(readFileSync(join(dir, LOCK_FILE), 'utf8').trim()).toBe(String(process.pid));
    again();
    expect(existsSync(join(dir, LOCK_FILE))).toBe(false);
  });
});
