import { afterAll, expect, test } from 'bun:test';
import {
  existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, truncateSync, writeFileSync,
} from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { hostTensor, type HostTensor } from '../ir/host.ts';
import {
  listCheckpoints, loadCheckpoint, loadLatestCheckpoint, saveCheckpoint, type CheckpointData,
} from './index.ts';

const roots: string[] = [];
afterAll(() => roots.forEach((r) => rmSync(r, { recursive: true, force: true })));
function runDir(): string {
  const d = mkdtempSync(os.tmpdir() + '/ckpt-');
  roots.push(d);
  return d;
}
const ckDir = (run: string): string => join(run, 'checkpoints');
/** A pid above Linux's pid_max: certainly not a live process. */
const DEAD_PID = 4_999_999;

function bytes(t: HostTensor): Uint8Array {
  return new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
}

/** A small checkpoint whose every value encodes `step`. */
function simple(step: number): CheckpointData {
  return {
    step,
    tensors: new Map([['w', hostTensor('float32', [4], new Float32Array(4).fill(step))]]),
    optimizer: new Map([['exp_avg/w', hostTensor('float32', [4], new Float32Array(4).fill(step / 2))]]),
    state: { step, rng: `seed-${step}` },
  };
}

function expectSame(got: CheckpointData, want: CheckpointData): void {
  expect(got.step).toBe(want.step);
  for (const k of ['tensors', 'optimizer'] as const) {
    expect([...got[k].keys()]).toEqual([...want[k].keys()]);
    for (const [name, t] of want[k]) {
      const g = got[k].get(name)!;
      expect(g.dtype).toBe(t.dtype);
      expect(g.shape).toEqual(t.shape);
      expect(g.data.constructor).toBe(t.data.constructor);
      expect(bytes(g)).toEqual(bytes(t));
    }
  }
  expect(got.state).toEqual(want.state);
}

test('round trip keeps dtypes, bits, tensor order and exact JSON numbers', async () => {
  const run = runDir();
  const f32 = new Float32Array([0, -0, 1.5, NaN, Infinity, -Infinity, 1e-45, 3.4028234e38, Math.PI]);
  new Uint32Array(f32.buffer)[3] = 0x7fc12345; // a NaN with a payload
  const ckpt: CheckpointData = {
    step: 120,
    tensors: new Map<string, HostTensor>([
      ['z.last', hostTensor('float32', [3, 3], f32)],
      ['a.first', hostTensor('int64', [4], BigInt64Array.of(2n ** 62n + 1n, -1n, -(2n ** 63n), 2n ** 63n - 1n))],
      ['m.f64', hostTensor('float64', [2], Float64Array.of(0.1 + 0.2, -5e-324))],
      ['m.bf16', hostTensor('bfloat16', [2], Uint16Array.of(0x3f80, 0xffff))],
      ['m.i32', hostTensor('int32', [], Int32Array.of(-7))],
      ['m.bool', hostTensor('bool', [2], Uint8Array.of(1, 0))],
      ['m.empty', hostTensor('int8', [0, 5], new Int8Array(0))],
    ]),
    optimizer: new Map([['exp_avg/z.last', hostTensor('float32', [1], Float32Array.of(1 / 3))]]),
    state: {
      adam: { t: 120, lr: 3e-4, betas: [0.9, 0.999] }, rng: { words: ['18446744073709551615', '0x9e3779b97f4a7c15'] },
      stream: { file: 'données.jsonl', offset: 2 ** 53 - 1, done: false, last: null }, negZero: -0, tiny: 5e-324,
      'key with "quotes"': 0.1 + 0.2, configHash: 'abc123', plugins: {},
    },
  };
  const path = await saveCheckpoint(run, ckpt);
  expect(path).toBe(join(ckDir(run), 'step-000120'));
  expect(readdirSync(path).sort()).toEqual(['COMPLETE', 'optimizer.safetensors', 'params.safetensors', 'state.json']);
  expect(readFileSync(join(ckDir(run), 'latest'), 'utf8')).toBe('step-000120\n');
  expect(readdirSync(ckDir(run)).sort()).toEqual(['latest', 'step-000120']);
  const got = await loadLatestCheckpoint(run);
  expect(got).not.toBeNull();
  expectSame(got!, ckpt);
  expect(Object.is(got!.state['negZero'], -0)).toBe(true);
  expect(got!.warnings).toEqual([]);
  expect(got!.path).toBe(path);
  expectSame(await loadCheckpoint(path), ckpt);
  expect(await listCheckpoints(run)).toEqual([{ name: 'step-000120', step: 120, path, complete: true }]);
});

test('state values JSON cannot hold exactly are refused before anything is written', async () => {
  const run = runDir();
  const bad: [unknown, RegExp][] = [
    [{ rng: { s: 5n } }, /state\.rng\.s: BigInt 5n .*string/],
    [{ loss: NaN }, /state\.loss: NaN/],
    [{ best: [1, -Infinity] }, /state\.best\[1\]: -Infinity/],
    [{ word: 2 ** 60 }, /state\.word: the integer .* beyond 2\^53/],
    [{ seen: new Map() }, /state\.seen: a Map/],
    [{ when: new Date() }, /state\.when: a Date/],
    [{ f: () => 1 }, /state\.f: function/],
    [{ 'a b': { x: [undefined] } }, /state\["a b"\]\.x\[0\]: undefined/],
    [{ holes: [1, , 3] }, /state\.holes\[1\]: undefined/],
  ];
  const cyclic: Record<string, unknown> = {};
  cyclic['self'] = cyclic;
  bad.push([cyclic, /state\.self: circular/]);
  for (const [state, msg] of bad) {
    await expect(saveCheckpoint(run, { ...simple(1), state: state as Record<string, unknown> })).rejects.toThrow(msg);
  }
  await expect(saveCheckpoint(run, { ...simple(1), step: 1.5 })).rejects.toThrow(/step must be/);
  await expect(saveCheckpoint(run, simple(1), { keep: 0 })).rejects.toThrow(/keep must be/);
  expect(existsSync(ckDir(run))).toBe(false);
  // An invalid tensor fails inside the temporary folder, which is removed again.
  const badTensor = { ...simple(2), tensors: new Map([['w', { dtype: 'float32' as const, shape: [3], data: new Float32Array(2) }]]) };
  await expect(saveCheckpoint(run, badTensor)).rejects.toThrow(/2 elements/);
  expect(readdirSync(ckDir(run))).toEqual([]);
  expect(await loadLatestCheckpoint(run)).toBeNull();
});

test('keep prunes older checkpoints and stale leftovers of crashed writers', async () => {
  const run = runDir();
  for (const s of [10, 20, 30]) await saveCheckpoint(run, simple(s));
  const stale = join(ckDir(run), `.tmp-step-000040-${DEAD_PID}-abcd`);
  mkdirSync(stale);
  writeFileSync(join(stale, 'params.safetensors'), 'partial');
  writeFileSync(join(ckDir(run), `latest.tmp-${DEAD_PID}-ab12`), 'step-0');
  const live = join(ckDir(run), '.tmp-step-000050-1-abcd'); // pid 1 is alive: another writer's folder is left alone
  mkdirSync(live);
  await saveCheckpoint(run, simple(40), { keep: 2 });
  expect(readdirSync(ckDir(run)).sort()).toEqual(['.tmp-step-000050-1-abcd', 'latest', 'step-000030', 'step-000040']);
  await saveCheckpoint(run, simple(50), { keep: 1 });
  expect((await listCheckpoints(run)).map((c) => c.step)).toEqual([50]);
  expectSame((await loadLatestCheckpoint(run))!, simple(50));
  // Resumed from an earlier step: checkpoints with a larger step are not pruned, and `latest` is followed.
  await saveCheckpoint(run, simple(45), { keep: 1 });
  expect((await listCheckpoints(run)).map((c) => c.step)).toEqual([45, 50]);
  expect((await loadLatestCheckpoint(run))!.step).toBe(45);
});

test('re-saving an existing step replaces it', async () => {
  const run = runDir();
  await saveCheckpoint(run, simple(7));
  const again = { ...simple(7), state: { step: 7, resumed: true } };
  await saveCheckpoint(run, again, { keep: 3 });
  expectSame((await loadLatestCheckpoint(run))!, again);
  expect(readdirSync(ckDir(run)).sort()).toEqual(['latest', 'step-000007']);
});

test('simulated crashes leave the previous checkpoint loadable, with warnings', async () => {
  const run = runDir();
  const dir = ckDir(run);
  expect(await loadLatestCheckpoint(run)).toBeNull();
  await saveCheckpoint(run, simple(10));
  await saveCheckpoint(run, simple(20));
  const load = async (): Promise<{ step: number; warnings: string[] }> => {
    const seen: string[] = [];
    const got = (await loadLatestCheckpoint(run, { onWarning: (m) => seen.push(m) }))!;
    expect(got.warnings).toEqual(seen);
    expectSame(got, simple(got.step));
    return { step: got.step, warnings: got.warnings };
  };
  // A writer died inside its temporary folder: nothing visible changes.
  mkdirSync(join(dir, '.tmp-step-000030-4999999-ab'));
  writeFileSync(join(dir, '.tmp-step-000030-4999999-ab', 'params.safetensors'), 'partial');
  expect(await load()).toEqual({ step: 20, warnings: [] });
  // A step folder without COMPLETE that `latest` points to.
  mkdirSync(join(dir, 'step-000030'));
  writeFileSync(join(dir, 'step-000030', 'params.safetensors'), 'partial');
  writeFileSync(join(dir, 'latest'), 'step-000030\n');
  let r = await load();
  expect(r.step).toBe(20);
  expect(r.warnings.join('\n')).toMatch(/step-000030.*incomplete checkpoint \(no COMPLETE marker/);
  expect((await listCheckpoints(run)).map((c) => [c.step, c.complete])).toEqual([[10, true], [20, true], [30, false]]);
  // `latest` points to a folder that does not exist.
  writeFileSync(join(dir, 'latest'), 'step-000099\n');
  r = await load();
  expect(r.step).toBe(20);
  expect(r.warnings[0]).toMatch(/step-000099: no such checkpoint folder/);
  // `latest` is garbage, or missing.
  writeFileSync(join(dir, 'latest'), '../../etc');
  expect((await load()).warnings[0]).toMatch(/not a checkpoint folder name/);
  rmSync(join(dir, 'latest'));
  expect((await load()).warnings[0]).toMatch(/latest is missing/);
  // A truncated data file in the newest complete checkpoint.
  writeFileSync(join(dir, 'latest'), 'step-000020\n');
  truncateSync(join(dir, 'step-000020', 'params.safetensors'), 100);
  r = await load();
  expect(r.step).toBe(10);
  expect(r.warnings[0]).toMatch(/params\.safetensors: 100 bytes, expected \d+ bytes/);
});

test('a crash during a same-step re-save falls back to the folder moved aside', async () => {
  const run = runDir();
  const dir = ckDir(run);
  await saveCheckpoint(run, simple(5));
  await saveCheckpoint(run, simple(6));
  // The old step-6 folder was renamed aside and the new one never arrived.
  renameSync(join(dir, 'step-000006'), join(dir, `.old-step-000006-${DEAD_PID}-00ff`));
  const got = (await loadLatestCheckpoint(run))!;
  expect(got.step).toBe(6);
  expect(got.path).toContain('.old-step-000006');
  await saveCheckpoint(run, simple(6));
  expect(readdirSync(dir).sort()).toEqual(['latest', 'step-000005', 'step-000006']);
});
