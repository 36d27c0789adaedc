import { z } from 'zod';

export const int8Schema = z
  .object({
    blockSize: z
      .number().int().min(1).optional()
      .describe('weights per absmax scale, counted along the flattened weight; leave it out for one scale per output row (per-channel, the default, as bitsandbytes\' 8-bit weights)'),
    targets: z
      .union([z.array(z.string()).min(1), z.string()])
      .default('all-linear')
      .describe('linear weights to store in 8 bits: "all-linear" (every linear layer but the output head), module names (q_proj, ...), or a regular expression over full module names'),
    recomputeBackward: z
      .boolean().default(true)
      .describe('dequantise each weight again in the backward pass (one int8_matmul primitive per layer) instead of keeping the float32 weight from the forward pass to the backward pass; false trades ~4 bytes per frozen weight at the step peak for one dequantisation less per layer'),
  })
  .strict();

export type Int8Options = z.input<typeof int8Schema>;
export type Int8Config = z.output<typeof int8Schema>;

/** Parses the options; the error names every bad field (`int8: invalid options` then `  blockSize: ...`). */
export function parseInt8Options(options: unknown): Int8Config {
  const r = int8Schema.safeParse(options ?? {});
  if (r.success) return r.data;
  const lines = r.error.issues.map((i) => {
    // An unknown key is reported on the object itself; name the key instead.
    const keys = i.code === 'unrecognized_keys' ? i.keys.join(', ') : '';
    const path = i.path.length ? i.path.join('.') : keys || '(options)';
    return `  ${path}: ${i.message}`;
  });
  throw new Error(`int8: invalid options\n${lines.join('\n')}`);
}
