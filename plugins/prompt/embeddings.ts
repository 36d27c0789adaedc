/** Placing the soft prompt [nvt, C] before each sequence's token embeddings, in training and when decoding. */
import { op, type Tensor, type TokenEmbeddings } from '../../core/index.ts';

/**
 * A sequence: the prompt rows go in front ([B, T, C] -> [B, nvt+T, C]) and take positions 0..nvt-1, as PEFT's
 * concatenated inputs do. Decoding one row at position p: rows below nvt are placeholders replaced by prompt row p.
 */
export function prependPrompt(e: TokenEmbeddings, table: Tensor): TokenEmbeddings {
  const [nvt, C] = table.shape as [number, number];
  const B = e.embeds.shape[0]!;
  if (e.position) {
    const p = op.reshape(e.position, [B, 1]); // [B, 1]
    const isPrompt = op.less(p, nvt); // [B, 1]
    const row = op.gather(table, op.where(isPrompt, p, 0)); // [B, 1, C]
    return { ...e, embeds: op.where(op.reshape(isPrompt, [B, 1, 1]), row, e.embeds), lead: e.lead + nvt };
  }
  const rows = op.broadcastTo(op.reshape(table, [1, nvt, C]), [B, nvt, C]); // [B, nvt, C]
  return { ...e, embeds: op.concat([rows, e.embeds], 1), virtualRows: e.virtualRows + nvt, lead: e.lead + nvt };
}
