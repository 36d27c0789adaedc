/**
 * One process trains a run folder at a time. When the service dies, its children see their stdin close and pause
 * (they write a checkpoint first); a restarted service starts the same jobs again at once. The new child waits
 * here until the old one has let go, so it resumes from the old one's last checkpoint instead of racing it.
 */
import { mkdirSync, openSync, readFileSync, rmSync, writeSync, closeSync } from 'node:fs';
import { join } from 'node:path';

export const LOCK_FILE = 'worker.lock';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM'; // it exists, owned by someone else
  }
}

function holder(path: string): number | undefined {
  try {
    const pid = Number(readFileSync(path, 'utf8').trim());
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined; // gone meanwhile, or being written
  }
}

export class RunBusyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RunBusyError';
  }
}

/** Takes the run folder's lock (waiting up to `waitMs` for a live holder); returns its release. */
export async function lockRunFolder(dir: string, waitMs = 60_000): Promise<() => void> {
  mkdirSync(dir, { recursive: true });
  const path = join(dir, LOCK_FILE);
  const deadline = Date.now() + waitMs;
  for (;;) {
    try {
      const fd = openSync(path, 'wx');
      writeSync(fd, `${process.pid}\n`);
      closeSync(fd);
      return () => {
        if (holder(path) === process.pid) rmSync(path, { force: true });
      };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    const pid = holder(path);
    if (pid !== undefined && !alive(pid)) {
      rmSync(path, { force: true }); // left by a process that was killed
      continue;
    }
    if (Date.now() > deadline) {
      throw new RunBusyError(`${path}: the run folder is held by process ${pid ?? '(unknown)'} for over ${Math.round(waitMs / 1000)} s; stop that process, or delete the file if no process trains this job`);
    }
    await Bun.sleep(100);
  }
}
