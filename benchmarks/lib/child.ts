/**
 * Benchmark cases run in their own Bun process, so that wall time and peak resident memory belong to that case
 * alone. The child prints its result as one line `<tag>{json}` on stdout (a bare `{json}` line with the empty tag);
 * the parent takes the last such line.
 */
export interface ChildOptions {
  cwd?: string;
  env?: Record<string, string | undefined>;
  /** Capture the child's stderr (quoted in the error if it fails) instead of passing it through. */
  quiet?: boolean;
  /** Names the case in errors (default: the script and its arguments). */
  label?: string;
  /** Kill the child (SIGKILL) after this long and fail with a message saying so. */
  timeoutMs?: number;
}

export async function runChild<R>(script: string, args: readonly string[], tag = '', opts: ChildOptions = {}): Promise<R> {
  const child = Bun.spawn([process.execPath, script, ...args], {
    stdout: 'pipe', stderr: opts.quiet ? 'pipe' : 'inherit', ...(opts.cwd ? { cwd: opts.cwd } : {}), ...(opts.env ? { env: opts.env } : {}),
  });
  let timedOut = false;
  const timer = opts.timeoutMs === undefined ? undefined : setTimeout(() => { timedOut = true; child.kill('SIGKILL'); }, opts.timeoutMs);
  const [out, err, code] = await Promise.all([
    new Response(child.stdout).text(),
    opts.quiet ? new Response(child.stderr as ReadableStream).text() : Promise.resolve(''),
    child.exited,
  ]).finally(() => clearTimeout(timer));
  if (timedOut) throw new Error(`${opts.label ?? `${script} ${args.join(' ')}`} timed out after ${(opts.timeoutMs! / 1000).toFixed(0)} s and was killed`);
  const line = out.split('\n').filter((l) => l.startsWith(`${tag}{`)).at(-1);
  if (code !== 0 || !line) {
    throw new Error(`${opts.label ?? `${script} ${args.join(' ')}`} failed (exit code ${code}${line ? '' : ', no result line'})\n${out}${err ? `\n${err}` : ''}`);
  }
  return JSON.parse(line.slice(tag.length)) as R;
}

/** The child's side: prints the result line and exits (stray handles, such as onnxruntime's threads, do not keep it alive). */
export function reportToParent(tag: string, result: unknown): never {
  process.stdout.write(`${tag}${JSON.stringify(result)}\n`);
  process.exit(0);
}

/** A child run's log and progress stream, each line on stderr prefixed with the run's label. */
export function prefixedOutput(prefix: string): { log: (line: string) => void; progress: { isTTY: false; write: (s: string) => void } } {
  return {
    log: (line) => void process.stderr.write(`${prefix}${line}\n`),
    progress: { isTTY: false, write: (s) => void process.stderr.write(s.split('\n').map((l) => (l ? prefix + l : l)).join('\n')) },
  };
}
