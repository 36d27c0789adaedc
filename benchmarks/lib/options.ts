/**
 * Command-line options of the benchmark scripts: `--name value`, `--name=value`, a bare `--name` (= "1"), or an
 * environment variable `<PREFIX>_<NAME>` (e.g. SST2_EVAL_LIMIT=100). An option that is not declared is refused with
 * the list of known ones, so a typo never silently runs the default.
 */
export interface BenchOptions {
  string(name: string): string | undefined;
  number(name: string): number | undefined;
}

export function benchOptions(known: readonly string[], envPrefix?: string, argv = process.argv.slice(2)): BenchOptions {
  for (const a of argv) {
    if (a.startsWith('--') && !known.includes(a.slice(2).split('=')[0]!)) {
      throw new Error(`unknown option ${a}; known: ${known.filter((k) => k !== 'child').map((k) => `--${k}`).join(', ')}`);
    }
  }
  const string = (name: string): string | undefined => {
    const flag = `--${name}`;
    for (let i = 0; i < argv.length; i++) {
      if (argv[i] === flag) return argv[i + 1] !== undefined && !argv[i + 1]!.startsWith('--') ? argv[i + 1] : '1';
      if (argv[i]!.startsWith(`${flag}=`)) return argv[i]!.slice(flag.length + 1);
    }
    return envPrefix ? process.env[`${envPrefix}_${name.toUpperCase().replaceAll('-', '_')}`] : undefined;
  };
  const number = (name: string): number | undefined => {
    const v = string(name);
    if (v === undefined || v === '') return undefined;
    const n = Number(v);
    if (!Number.isFinite(n)) throw new Error(`--${name}: expected a number, got ${JSON.stringify(v)}`);
    return n;
  };
  return { string, number };
}
