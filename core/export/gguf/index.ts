/** GGUF export for llama.cpp: merged models (F32, F16, Q8_0) and LoRA adapters, plus a reader to check them. */
export { writeGgufModel, tensorType, GGUF_QUANTS, type GgufQuant, type GgufModelOptions, type GgufWriteResult } from './model.ts';
export { writeGgufLora, type LoraPair } from './lora.ts';
export { readGguf, type GgufFile, type GgufTensorInfo, type GgufReadValue } from './reader.ts';
export { checkGgufArchitecture, ggufArchitecture, ggufTensorName, permuteRotaryRows, GgufUnsupportedError, GGUF_ARCHITECTURES } from './arch.ts';
export { encodeQ8_0, decodeQ8_0 } from './quant.ts';
export { writeGguf, type GgufTensor } from './writer.ts';
export type { GgufMetadata, GgufValue } from './values.ts';
