/**
 * The training child: `bun server/worker/child.ts <spec.json>`. Trains one job's run (resuming from the latest
 * checkpoint of its folder) and reports on stdout in the protocol of protocol.ts. A separate process, so that a
 * crash, an out-of-memory kill or a cancel takes down this run only, never the service.
 *
 * stdin is the control channel: a `pause` line, or its end (the service is gone), stops the run after a checkpoint
 * of the steps done; the same spec started again continues from there to the same weights.
 */
import { readFileSync } from 'node:fs';
import { isAbsolute } from 'node:path';
import { parseTrainConfig, type TrainConfig } from '../../core/train/config.ts';
import { train } from '../../core/train/trainer.ts';
import { classifyError } from './errors.ts';
import { lockRunFolder } from './lock.ts';
import { resolveJobPlugins } from './plugins.ts';
import { encodeMessage, PAUSE_COMMAND, type WorkerMessage } from './protocol.ts';
import { workerSpecSchema } from './spec.ts';
import { trainedTokens } from './tokens.ts';

function send(message: WorkerMessage): void {
  try {
    process.stdout.write(encodeMessage(message));
  } catch {
    // The parent is gone: the run pauses (stdin ended) and nobody reads this anyway.
  }
}
// Writing to a closed pipe must not kill the child before it has saved its checkpoint.
process.stdout.on('error', () => {});

/** Calls `onStop` once, on a `pause` line or at the end of stdin. */
function watchControl(onStop: (why: string) => void): void {
  let pending = '';
  let stopped = false;
  const stop = (why: string) => {
    if (!stopped) onStop(why);
    stopped = true;
  };
  process.stdin.setEncoding('utf8');
  process.stdin.on('data', (chunk: string) => {
    pending += chunk;
    const lines = pending.split('\n');
    pending = lines.pop()!;
    if (lines.some((l) => l.trim() === PAUSE_COMMAND)) stop('pause requested');
  });
  process.stdin.on('end', () => stop('the service closed the control channel'));
  process.stdin.on('error', () => stop('the control channel failed'));
}

function readSpec(path: string | undefined) {
  if (!path) throw new Error('usage: bun server/worker/child.ts <spec.json>');
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new Error(`${path}: cannot read the job spec (${(e as Error).message})`);
  }
  const r = workerSpecSchema.safeParse(raw);
  if (!r.success) throw new Error(`${path}: invalid job spec: ${r.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')}`);
  return r.data;
}

/** The child runs in an empty folder: a relative path would resolve against it, so every path must be absolute. */
function checkPaths(config: TrainConfig): void {
  const files = (v: string | string[] | undefined) => (v === undefined ? [] : Array.isArray(v) ? v : [v]);
  const paths = [config.output, ...files(config.data.train), ...files(config.data.eval)];
  const relative = paths.filter((p) => !isAbsolute(p));
  if (relative.length) throw new Error(`invalid config: paths must be absolute (the worker runs in an empty folder): ${relative.join(', ')}`);
}

async function main(): Promise<void> {
  const spec = readSpec(process.argv[2]);
  if (spec.offline) process.env.HF_HUB_OFFLINE = '1';
  const controller = new AbortController();
  watchControl((why) => {
    send({ type: 'log', line: `${why}: stopping after a checkpoint of the steps done` });
    controller.abort();
  });
  const config = parseTrainConfig(spec.config, `job ${spec.jobId}`);
  checkPaths(config);
  const release = await lockRunFolder(config.output);
  try {
    const plugins = await resolveJobPlugins(config.plugins, spec.allowedPlugins ?? []);
    send({ type: 'started', pid: process.pid });
    let last: Readonly<Record<string, number>> = {};
    const result = await train({
      config,
      plugins,
      resume: true,
      progress: { write: () => true, isTTY: false },
      log: (line) => send({ type: 'log', line }),
      onRecord: (record) => {
        if (typeof record.tok_s === 'number') last = record; // a step's record (the final eval's has no throughput)
        send({ type: 'metrics', record: { ...record } });
      },
      onCheckpoint: (step, dir) => send({ type: 'checkpoint', step, dir, metrics: last.step === step ? { ...last } : {} }),
      signal: controller.signal,
    });
    send({
      type: 'result',
      status: result.finished ? 'succeeded' : 'paused',
      step: result.step,
      trainedTokens: trainedTokens(config.output),
      exported: result.exported,
      metrics: { ...last, ...result.metrics, step: result.step },
    });
  } finally {
    release();
  }
}

try {
  await main();
  process.exit(0); // onnxruntime's threads would keep the process alive
} catch (e) {
  console.error(e); // the stack, for the service's log; the message goes to the job
  send({ type: 'error', code: classifyError(e), message: e instanceof Error ? e.message : String(e) });
  process.exit(1);
}
