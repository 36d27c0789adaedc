/**
 * The service's side of a training child (child.ts): starts it with `process.execPath` (as benchmarks/lib/child.ts
 * does), passes its reports to handlers in order, and turns however it ended into a JobOutcome. A child that dies
 * (a signal, a native crash, the OOM killer) fails the job with what happened and the last lines of its stderr,
 * never the service.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { isAbsolute, join } from 'node:path';
import { forEachLine, PAUSE_COMMAND, parseMessage, type WorkerMessage } from './protocol.ts';
import type { JobError, JobOutcome, WorkerSpec } from './spec.ts';
import { trainedTokens } from './tokens.ts';

const CHILD = join(import.meta.dir, 'child.ts');
/** The spec the child of a run folder was started with (kept there: it says how the folder's run was made). */
export const SPEC_FILE = 'worker-spec.json';
const STDERR_LINES_KEPT = 20;

type Awaitable = void | Promise<void>;

export interface JobHandlers {
  /** A line of the trainer's log. */
  onLog?(line: string): Awaitable;
  /** A metrics record (one per step, and the final evaluation's). */
  onMetrics?(record: Record<string, number>): Awaitable;
  /** A checkpoint was saved: its step, folder, and that step's metrics (empty when not trained by this child). */
  onCheckpoint?(step: number, dir: string, metrics: Record<string, number>): Awaitable;
  /** `running` once the child holds the run folder and has its plugins; `pausing`/`cancelling` when asked to. */
  onStatus?(status: 'running' | 'pausing' | 'cancelling'): Awaitable;
  /** A line of the child's stderr (warnings of native libraries, the stack of an error). */
  onStderr?(line: string): Awaitable;
}

export interface StartOptions {
  /** How long a cancelled child may take to exit after SIGTERM before it gets SIGKILL (default 5 s). */
  graceMs?: number;
  /** The child's environment (default: this process's). */
  env?: Record<string, string | undefined>;
}

export interface JobProcess {
  /** The child's pid (-1 when it could not be started). */
  pid: number;
  /** Settles when the child has exited and every handler call has finished; never rejects. */
  done: Promise<JobOutcome>;
  /** Stops the run now: SIGTERM, then SIGKILL after the grace period. The outcome is `cancelled`. */
  cancel(): void;
  /** Stops the run after a checkpoint of the steps done (outcome `paused`); the same spec started again resumes. */
  pause(): void;
}

function failedAtOnce(error: JobError): JobProcess {
  const outcome: JobOutcome = { status: 'failed', error, trainedTokens: 0, exported: [], metrics: {} };
  return { pid: -1, done: Promise.resolve(outcome), cancel: () => {}, pause: () => {} };
}

/** What a child that reported no result died of, in words a person can act on. */
function deathOf(pid: number, code: number | null, signalCode: string | number | null, stderrTail: readonly string[], checkpoint: number | undefined): JobError {
  const signal = typeof signalCode === 'number' ? `signal ${signalCode}` : signalCode;
  const resume = checkpoint === undefined ? 'no checkpoint was written by it' : `its latest checkpoint is of step ${checkpoint}; a retry resumes from there`;
  const tail = stderrTail.length ? `; last stderr lines:\n${stderrTail.join('\n')}` : '; it wrote nothing to stderr';
  if (signal === 'SIGKILL') {
    return { code: 'worker_killed', message: `the training process (pid ${pid}) was killed by SIGKILL (usually the kernel's out-of-memory killer: lower memory.budget, the batch size or the sequence length; or an operator); ${resume}${tail}` };
  }
  if (signal === 'SIGTERM' || signal === 'SIGINT' || signal === 'SIGHUP') {
    return { code: 'worker_killed', message: `the training process (pid ${pid}) was stopped by ${signal} from outside the service; ${resume}${tail}` };
  }
  if (signal) return { code: 'worker_crashed', message: `the training process (pid ${pid}) crashed with ${signal}; ${resume}${tail}` };
  if (code !== 0) return { code: 'worker_crashed', message: `the training process (pid ${pid}) exited with code ${code} without reporting an error; ${resume}${tail}` };
  return { code: 'worker_protocol', message: `the training process (pid ${pid}) exited without reporting a result (a worker bug)${tail}` };
}

export function startJobProcess(spec: WorkerSpec, handlers: JobHandlers, options: StartOptions = {}): JobProcess {
  const output = spec.config.output;
  if (typeof output !== 'string' || !isAbsolute(output)) {
    return failedAtOnce({ code: 'invalid_config', message: `job ${spec.jobId}: config.output must be an absolute path (got ${JSON.stringify(output)})` });
  }
  const specPath = join(output, SPEC_FILE);
  // An empty working folder: nothing a config names can resolve to a file relative to it (a Hub id stays a Hub id).
  let cwd: string;
  let child: ReturnType<typeof spawnChild>;
  try {
    mkdirSync(output, { recursive: true });
    writeFileSync(specPath, `${JSON.stringify(spec, null, 2)}\n`);
    cwd = mkdtempSync(join(tmpdir(), 'tuneforge-worker-'));
    child = spawnChild(specPath, cwd, options.env);
  } catch (e) {
    return failedAtOnce({ code: 'worker_spawn_failed', message: `job ${spec.jobId}: cannot start the training process: ${(e as Error).message}` });
  }

  // Handlers run one at a time, in the order of the child's reports; one that throws is logged, not fatal.
  let queue: Promise<void> = Promise.resolve();
  const call = (what: string, fn: () => Awaitable) => {
    queue = queue.then(fn).catch((e: unknown) => console.error(`job ${spec.jobId}: the ${what} handler threw: ${(e as Error)?.stack ?? String(e)}`));
  };

  let result: Extract<WorkerMessage, { type: 'result' }> | undefined;
  let reported: JobError | undefined;
  let lastMetrics: Record<string, number> = {};
  let lastCheckpoint: number | undefined;
  const stderrTail: string[] = [];
  let cancelled = false;
  let killTimer: ReturnType<typeof setTimeout> | undefined;

  const onMessage = (m: WorkerMessage) => {
    switch (m.type) {
      case 'started': return call('onStatus', () => handlers.onStatus?.('running'));
      case 'log': return call('onLog', () => handlers.onLog?.(m.line));
      case 'metrics':
        if (typeof m.record.tok_s === 'number') lastMetrics = m.record;
        return call('onMetrics', () => handlers.onMetrics?.(m.record));
      case 'checkpoint':
        lastCheckpoint = m.step;
        return call('onCheckpoint', () => handlers.onCheckpoint?.(m.step, m.dir, m.metrics));
      case 'result': result = m; return;
      case 'error': reported = { code: m.code, message: m.message }; return;
    }
  };
  const reading = Promise.all([
    forEachLine(child.stdout, (line) => {
      const m = parseMessage(line);
      if (m) onMessage(m);
    }),
    forEachLine(child.stderr, (line) => {
      stderrTail.push(line);
      if (stderrTail.length > STDERR_LINES_KEPT) stderrTail.shift();
      call('onStderr', () => handlers.onStderr?.(line));
    }),
  ]).catch(() => undefined); // a broken pipe ends the reading; the exit status tells the rest

  const done = (async (): Promise<JobOutcome> => {
    await child.exited;
    await reading;
    if (killTimer) clearTimeout(killTimer);
    await queue;
    rmSync(cwd, { recursive: true, force: true });
    if (result && (result.status === 'succeeded' || !cancelled)) {
      return { status: result.status, trainedTokens: result.trainedTokens, exported: result.exported, metrics: result.metrics };
    }
    const partial = { trainedTokens: trainedTokens(output), exported: [], metrics: lastMetrics };
    if (cancelled) return { status: 'cancelled', ...partial };
    return { status: 'failed', error: reported ?? deathOf(child.pid, child.exitCode, child.signalCode, stderrTail, lastCheckpoint), ...partial };
  })();

  const running = () => child.exitCode === null && child.signalCode === null;
  return {
    pid: child.pid,
    done,
    cancel() {
      if (cancelled || !running()) return;
      cancelled = true;
      call('onStatus', () => handlers.onStatus?.('cancelling'));
      child.kill('SIGTERM');
      killTimer = setTimeout(() => {
        if (running()) child.kill('SIGKILL');
      }, options.graceMs ?? 5000);
    },
    pause() {
      if (cancelled || !running()) return;
      call('onStatus', () => handlers.onStatus?.('pausing'));
      try {
        child.stdin.write(`${PAUSE_COMMAND}\n`);
        void child.stdin.flush();
      } catch {
        // The child is exiting already; its outcome says how it ended.
      }
    },
  };
}

function spawnChild(specPath: string, cwd: string, env: Record<string, string | undefined> | undefined) {
  return Bun.spawn([process.execPath, CHILD, specPath], {
    cwd,
    env: env ?? process.env,
    stdin: 'pipe',
    stdout: 'pipe',
    stderr: 'pipe',
  });
}
