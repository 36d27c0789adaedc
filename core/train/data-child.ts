/**
 * The data-preparation child process (started by data-process.ts): reads and tokenises a run's datasets with
 * `loadRunData` and writes the result (run-data-file.ts) to the path it was given. Log lines go to stdout; a failure
 * is one message on stderr and exit code 1.
 *
 *   bun core/train/data-child.ts <request JSON>
 */
import { writeFileSync, renameSync } from 'node:fs';
import { loadTokenizer } from '../tokenizer/index.ts';
import type { DataRequest } from './data-process.ts';
import { encodeRunData } from './run-data-file.ts';
import { loadRunData } from './setup.ts';

try {
  const req = JSON.parse(process.argv[2] ?? '') as DataRequest;
  const tok = await loadTokenizer(req.modelDir);
  const data = await loadRunData(req.config, tok, (line) => console.log(line), req.maxPositions ?? Infinity);
  writeFileSync(`${req.out}.partial`, encodeRunData(data));
  renameSync(`${req.out}.partial`, req.out);
} catch (e) {
  process.stderr.write(`${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
}
