/**
 * Real crashes: a child process saves 50 MB checkpoints in a loop (resuming from, and first re-saving, the latest
 * one) and is killed with SIGKILL at a random moment; after every kill the latest checkpoint must load, complete
 * and internally consistent (every value equals the step it was written for).
 */
import { afterAll, expect, test } from 'bun:test';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { loadCheckpoint, loadLatestCheckpoint, saveCheckpoint, stepDirName, type CheckpointData } from './index.ts';

const root = mkdtempSync(os.tmpdir() + '/ckpt-');
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** Elements per float32 tensor: two of them make 50 MB per checkpoint. */
const N = 6_250_000;
const ROUNDS = 8;

const CHILD = `
import { loadLatestCheckpoint, saveCheckpoint } from ${JSON.stringify(join(import.meta.dir, 'index.ts'))};
import { hostTensor } from ${JSON.stringify(join(import.meta.dir, '..', 'ir', 'host.ts'))};
const run = process.argv[2];
const N = ${N};
function make(step) {
  return {
    step,
    tensors: new Map([
      ['w', hostTensor('float32', [N], new Float32Array(N).fill(step))],
      ['count', hostTensor('int64', [4], new BigInt64Array(4).fill(BigInt(step) * 2n ** 40n))],
    ]),
    optimizer: new Map([['exp_avg/w', hostTensor('float32', [N], new Float32Array(N).fill(step))]]),
    state: { step, rng: (BigInt(step) * 0x9e3779b97f4a7c15n).toString(), data: { offset: step * 1000 } },
  };
}
const prev = await loadLatestCheckpoint(run);
console.log('ready');
let step = 1;
if (prev !== null) {
  await saveCheckpoint(run, make(prev.step), { keep: 2 }); // re-save the step resumed from, as a resumed run may
  step = prev.step + 1;
}
for (;; step++) {
  await saveCheckpoint(run, make(step), { keep: 2 });
  console.log('saved ' + step);
}
`;

/** Reads the child's stdout until it contains `pattern`. */
async function waitFor(stdout: ReadableStream<Uint8Array>, pattern: RegExp): Promise<void> {
  const reader = stdout.getReader();
  const dec = new TextDecoder();
  let text = '';
  try {
    while (!pattern.test(text)) {
      const { value, done } = await reader.read();
      if (done) throw new Error(`child exited before printing ${pattern}; output: ${text}`);
      text += dec.decode(value);
    }
  } finally {
    reader.releaseLock();
  }
}

function checkConsistent(c: CheckpointData): void {
  const s = c.step;
  expect([...c.tensors.keys()]).toEqual(['w', 'count']);
  expect([...c.optimizer.keys()]).toEqual(['exp_avg/w']);
  for (const t of [c.tensors.get('w')!, c.optimizer.get('exp_avg/w')!]) {
    expect(t.dtype).toBe('float32');
    expect(t.data.length).toBe(N);
    const data = t.data as Float32Array;
    let bad = 0;
    for (let i = 0; i < data.length; i++) if (data[i] !== s) bad++;
    expect(bad).toBe(0);
  }
  expect([...(c.tensors.get('count')!.data as BigInt64Array)]).toEqual(new Array(4).fill(BigInt(s) * 2n ** 40n));
  expect(c.state).toEqual({ step: s, rng: (BigInt(s) * 0x9e3779b97f4a7c15n).toString(), data: { offset: s * 1000 } });
}

test('SIGKILL at random moments always leaves a complete, consistent latest checkpoint', async () => {
  const script = join(root, 'child.ts');
  writeFileSync(script, CHILD);
  const run = join(root, 'run');
  let last = 0;
  const log: string[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    const proc = Bun.spawn([process.execPath, script, run], { stdout: 'pipe', stderr: 'pipe' });
    // The first round waits for one finished checkpoint; later ones may die anywhere, even in the re-save.
    await waitFor(proc.stdout, round === 0 ? /saved 1/ : /ready/);
    const delay = Math.floor(Math.random() * 400);
    await Bun.sleep(delay);
    proc.kill('SIGKILL');
    expect(await proc.exited).not.toBe(0);
    const got = await loadLatestCheckpoint(run);
    log.push(`round ${round}: killed after ${delay} ms, loaded step ${got?.step}, ${got?.warnings.length} warnings`);
    expect(got).not.toBeNull();
    if (process.env['CKPT_LOG']) console.log(log.at(-1));
    checkConsistent(got!);
    expect(got!.step).toBeGreaterThanOrEqual(last);
    last = got!.step;
  }
  // The next save cleans up whatever the killed writers left behind.
  await saveCheckpoint(run, { step: last + 1, tensors: new Map(), optimizer: new Map(), state: {} }, { keep: 2 });
  const left = readdirSync(join(run, 'checkpoints'));
  expect(left.filter((n) => n.startsWith('.') || n.includes('.tmp-'))).toEqual([]);
  expect(left.filter((n) => n.startsWith('step-')).length).toBe(2);
  // The last checkpoint of the killed writers survived the pruning (keep: 2) and still loads.
  checkConsistent(await loadCheckpoint(join(run, 'checkpoints', stepDirName(last))));
}, 20_000);
