/**
 * Data preparation in a child process. Tokenising a dataset in JavaScript leaves far more garbage than result (the
 * tokenizer's intermediate strings and arrays, the parsed records), and the JavaScript heap does not hand that memory
 * back to the system: SST-2's 67k training sentences (3.5 M tokens, 27 MiB as int32 ids and labels) left the trainer
 * several hundred MiB larger. The child does the work and exits, taking its garbage with it; the trainer receives
 * the tokens in one buffer (run-data-file.ts). Log lines of the child are passed on as they come.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { moduleDir, scriptArgs } from '../runtime.ts';
import { decodeRunData } from './run-data-file.ts';
import type { RunData, RunDataConfig } from './setup.ts';

/** What the child is asked to do (JSON on its command line). */
export interface DataRequest {
  config: RunDataConfig;
  /** Model folder: the tokenizer files. */
  modelDir: string;
  maxPositions: number | null;
  /** Where the child writes its result. */
  out: string;
}

const CHILD = join(moduleDir(import.meta.url), 'data-child.ts');

/** `loadRunData` run in a child process (same result, see the file comment for why). */
export async function loadRunDataInChild(cfg: RunDataConfig, modelDir: string, log: (m: string) => void, maxPositions = Infinity): Promise<RunData> {
  const dir = mkdtempSync(join(tmpdir(), 'tuneforge-data-'));
  try {
    const req: DataRequest = {
      config: { data: cfg.data, task: cfg.task, seed: cfg.seed },
      modelDir,
      maxPositions: Number.isFinite(maxPositions) ? maxPositions : null,
      out: join(dir, 'data.bin'),
    };
    const child = spawn(process.execPath, [...scriptArgs(), CHILD, JSON.stringify(req)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let pending = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      pending += chunk;
      const lines = pending.split('\n');
      pending = lines.pop()!;
      for (const l of lines) log(l);
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const code = await new Promise<number | null>((resolve, reject) => {
      child.on('error', reject);
      child.on('close', resolve);
    });
    if (pending) log(pending);
    if (code !== 0) throw new Error(stderr.trim() || `data preparation failed (child process exit code ${code})`);
    return decodeRunData(readFileSync(req.out));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
