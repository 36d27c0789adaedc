/**
 * `tuneforge sidecar` in a child process, as it runs on a GPU machine: the benchmarks' way to measure a step through
 * the real server over loopback. Resolves once it prints its URL; a sidecar that exits first (a provider this machine
 * lacks) rejects with what it printed, which says why.
 */
import { join } from 'node:path';

export interface SidecarChild {
  url: string;
  pid: number;
  stop(): Promise<void>;
}


/** `quiet`: its stderr is kept for the error only, not passed through (a probe). */
export async function startSidecarChild(o: { provider: string; tokenFile: string; extraArgs?: readonly string[]; quiet?: boolean }): Promise<SidecarChild> {
  const proc = Bun.spawn(
    [process.execPath, join(import.meta.dir, '../../cli/main.ts'), 'sidecar', '--listen', '127.0.0.1:0', '--provider', o.provider, '--token-file', o.tokenFile, ...(o.extraArgs ?? [])],
    { stdout: 'pipe', stderr: 'pipe' },
  );
  // Its stderr passes through to ours as it comes, and is kept for the error if it exits before listening.
  let err = '';
  const errDone = proc.stderr.pipeTo(new WritableStream({ write: (chunk) => { err += new TextDecoder().decode(chunk); if (!o.quiet) process.stderr.write(chunk); } }));
  const reader = proc.stdout.getReader();
  let out = '';
  while (!/listening on (\S+)/.test(out)) {
    const { done, value } = await reader.read();
    if (done) {
      await Promise.all([proc.exited, errDone]);
      throw new Error(`the ${o.provider} sidecar did not start (exit code ${proc.exitCode}): ${(out + err).trim()}`);
    }
    out += new TextDecoder().decode(value);
  }
  reader.releaseLock();
  void proc.stdout.pipeTo(new WritableStream()); // drained, so a chatty sidecar never blocks on a full pipe
  return { url: /listening on (\S+)/.exec(out)![1]!, pid: proc.pid, stop: async () => { proc.kill(); await proc.exited; } };
}
