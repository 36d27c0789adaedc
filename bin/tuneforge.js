#!/usr/bin/env node
/**
 * The `tuneforge` command of the installed package (`npx tuneforge`, `bunx tuneforge`, `node_modules/.bin/tuneforge`).
 * tuneforge runs on Bun: under Bun the CLI runs in this process; under Node it is handed to a Bun found on PATH, in
 * BUN_BINARY, or in the project's own `bun` package (npm i -D bun).
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const cli = join(dirname(fileURLToPath(import.meta.url)), '..', 'cli', 'main.ts');
const args = process.argv.slice(2);

if (process.versions.bun) {
  const { main } = await import(cli);
  process.exit(await main(args));
}

/** A Bun binary: BUN_BINARY, the project's `bun` package (its binary once installed), then `bun` on PATH. */
function findBun() {
  if (process.env.BUN_BINARY) return process.env.BUN_BINARY;
  try {
    const pkg = createRequire(join(process.cwd(), 'package.json')).resolve('bun/package.json');
    const bin = join(dirname(pkg), 'bin', 'bun.exe');
    if (existsSync(bin)) return bin;
  } catch {
    // no bun package in the project
  }
  return 'bun';
}

const child = spawn(findBun(), [cli, ...args], { stdio: 'inherit' });
// Signals reach the CLI (a stopped `serve` stops its workers), and the launcher leaves with the CLI's status.
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(signal, () => child.kill(signal));
child.on('error', (e) => {
  if (e.code === 'ENOENT') console.error('tuneforge runs on Bun, and no Bun was found: install it in the project (npm i -D bun) or system-wide (https://bun.sh), or set BUN_BINARY');
  else console.error(`tuneforge: cannot start Bun: ${e.message}`);
  process.exit(127);
});
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 128 : 1)));
