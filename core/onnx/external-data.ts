/**
 * Models whose initializers pass protobuf's 2 GB limit: the weights go to `weights.bin` beside `model.onnx` in a
 * fresh temporary folder. Its own module because it needs a file system: `compile` imports it only when a model is
 * that large, so a browser bundle of `compile` never contains `node:fs`.
 */
import { closeSync, mkdtempSync, openSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeModel, type OnnxModel } from './model.ts';

/** Writes initializers to `weights.bin` beside `model.onnx`, so the protobuf stays small. */
export function withExternalData(model: OnnxModel): { path: string } {
  const dir = mkdtempSync(join(tmpdir(), 'tuneforge-onnx-'));
  const fd = openSync(join(dir, 'weights.bin'), 'w');
  let offset = 0;
  const initializers = model.initializers.map((init) => {
    if (!init.raw || init.raw.length < 1024) return init;
    // writeSync writes at most ~2 GiB per call (Linux): loop, or a large embedding is silently cut short.
    for (let done = 0; done < init.raw.length; ) done += writeSync(fd, init.raw, done);
    const ext = { ...init, raw: undefined, external: { location: 'weights.bin', offset, length: init.raw.length } };
    offset += init.raw.length;
    return ext;
  });
  closeSync(fd);
  const path = join(dir, 'model.onnx');
  writeFileSync(path, encodeModel({ ...model, initializers }));
  return { path };
}
