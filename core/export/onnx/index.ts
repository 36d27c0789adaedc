/** The transformers.js export: a causal-LM folder whose ONNX decoder (key/value cache in and out) is lowered by us. */
export { exportModelOnnx, exportRunOnnx } from './run.ts';
export { writeTransformersJsFolder, type OnnxExportResult, type OnnxFolderOptions } from './folder.ts';
export { decoderGraph, DECODER_DIMS, pastName, presentName, type DecoderOptions } from './decoder.ts';
export { lowerDynamic, type DynamicLowerOptions } from './dynamic.ts';
export { writeOnnxFile, DEFAULT_EXTERNAL_DATA_THRESHOLD, type OnnxFileResult } from './file.ts';
export { checkTransformersJsArchitecture, transformersJsTarget, OnnxUnsupportedError, TRANSFORMERSJS_ARCHITECTURES, type TransformersJsTarget } from './support.ts';
