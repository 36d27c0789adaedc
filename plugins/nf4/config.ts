import { z } from 'zod';

export const nf4Schema = z
  .object({
    blockSize: z
      .number().int().min(2).multipleOf(2).default(64)
      .describe('weights per block sharing one absmax scale (QLoRA: 64); even, so the two codes of a byte share a block'),
    doubleQuant: z
      .boolean().default(true)
      .describe('double quantisation: store the block absmax values as 8-bit codes (minus their mean) with one float32 scale per doubleQuantBlockSize blocks, instead of float32'),
    doubleQuantBlockSize: z
      .number().int().positive().default(256)
      .describe('absmax values per 8-bit double-quantisation block (QLoRA: 256)'),
    targets: z
      .union([z.array(z.string()).min(1), z.string()])
      .default('all-linear')
      .describe('linear weights to store in 4 bits: "all-linear" (every linear layer but the output head), module names (q_proj, ...), or a regular expression over full module names'),
    recomputeBackward: z
      .boolean().default(true)
      .describe('dequantise each weight again in the backward pass (one nf4_matmul primitive per layer) instead of keeping the float32 weight from the forward pass to the backward pass; false trades ~4 bytes per frozen weight at the step peak for one dequantisation less per layer'),
    pagedOptimizer: z
      .boolean().default(true)
      .describe('keep optimizer state off the compute device (QLoRA paged optimizers); a no-op on the CPU runner, where the optimizer state already lives in host memory'),
  })
  .strict();

export type Nf4Options = z.input<typeof nf4Schema>;
export type Nf4Config = z.output<typeof nf4Schema>;
