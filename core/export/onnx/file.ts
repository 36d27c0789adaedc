/**
 * Writing an ONNX model to disk, its weights inline or, past a size, in one external data file beside it
 * (`model.onnx_data`, the name transformers.js looks for): protobuf cannot hold a message over 2 GB.
 */
import { closeSync, openSync, writeFileSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { encodeModel, type OnnxModel } from '../../onnx/model.ts';

/** Initializers above this many bytes in all go to the external data file. */
export const DEFAULT_EXTERNAL_DATA_THRESHOLD = 1.5 * 2 ** 30;

export interface OnnxFileResult {
  files: string[];
  bytes: number;
  /** True when the weights are in `<model>_data`. */
  externalData: boolean;
}

export function writeOnnxFile(path: string, model: OnnxModel, threshold = DEFAULT_EXTERNAL_DATA_THRESHOLD): OnnxFileResult {
  const weightBytes = model.initializers.reduce((s, i) => s + (i.raw?.length ?? 0), 0);
  if (weightBytes <= threshold) {
    const bytes = encodeModel(model);
    writeFileSync(path, bytes);
    return { files: [path], bytes: bytes.length, externalData: false };
  }
  const location = `${basename(path)}_data`;
  const dataPath = join(dirname(path), location);
  const fd = openSync(dataPath, 'w');
  let offset = 0;
  try {
    // Shape constants and scalars stay inline (onnxruntime reads them while building the graph); weights go out.
    model = {
      ...model,
      initializers: model.initializers.map((init) => {
        if (!init.raw || init.raw.length < 1024) return init;
        for (let done = 0; done < init.raw.length; ) done += writeSync(fd, init.raw, done);
        const external = { location, offset, length: init.raw.length };
        offset += init.raw.length;
        return { ...init, raw: undefined, external };
      }),
    };
  } finally {
    closeSync(fd);
  }
  const bytes = encodeModel(model);
  writeFileSync(path, bytes);
  return { files: [path, dataPath], bytes: bytes.length + offset, externalData: true };
}
