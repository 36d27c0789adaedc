/**
 * After `npm ci` in a clone of the repository: put Bun's binary in place (the repository's own dev dependency, whose
 * install script npm may not run). Installed as a dependency of another project there is nothing to do.
 */
import { existsSync } from 'node:fs';
import { spawnSync } from 'node:child_process';

if (existsSync('node_modules/bun/install.js')) {
  const r = spawnSync(process.execPath, ['node_modules/bun/install.js'], { stdio: 'inherit' });
  process.exit(r.status ?? 1);
}
