/** From the data pipeline's batches to model feeds: micro-batches, shifted labels, trimmed padding. */
import type { HostTensor } from '../ir/host.ts';
import { collate, type Batch } from '../data/batch.ts';
import type { Example } from '../data/example.ts';

/** labels[t] -> labels[t + 1] (the target of position t is the next token); the last position gets -100. */
export function shiftLabels(labels: HostTensor): HostTensor {
  const [B, T] = labels.shape as [number, number];
  const src = labels.data as BigInt64Array;
  const out = new BigInt64Array(B * T).fill(-100n);
  for (let b = 0; b < B; b++) for (let t = 0; t + 1 < T; t++) out[b * T + t] = src[b * T + t + 1]!;
  return { dtype: 'int64', shape: [B, T], data: out };
}

export interface MicroBatch {
  feeds: { input_ids: HostTensor; labels: HostTensor };
  dims: { B: number; T: number };
  /** Positions that carry loss after shifting (the weight of this micro-batch in the accumulated gradient). */
  lossTokens: number;
  tokens: number;
}

function countLoss(labels: HostTensor): number {
  let n = 0;
  for (const v of labels.data as BigInt64Array) if (v >= 0n) n++;
  return n;
}

/**
 * Splits a batch's rows into micro-batches of at most `size` rows, each padded to its own length. With `fullBatch`
 * (the run's batch size), a short batch (an epoch's last) gets rows of padding without loss up to the shape a full
 * batch's micro-batch has there: the step then reuses the compiled session instead of compiling and keeping a
 * second one beside it (which raised LISA's peak by a session at every epoch end; the loss and gradients are the
 * same, since padding rows carry no loss).
 */
export function microBatches(examples: readonly Example[], batch: Batch, size: number, padId: number, multipleOf: number, fullBatch?: number): MicroBatch[] {
  const out: MicroBatch[] = [];
  for (let i = 0; i < batch.indices.length; i += size) {
    const rows = fullBatch === undefined ? undefined : Math.min(size, fullBatch - i);
    const b = collate(examples, batch.indices.slice(i, i + size), { padId, padTo: 'longest', multipleOf, rows });
    const labels = shiftLabels(b.labels);
    const [B, T] = b.inputIds.shape as [number, number];
    out.push({ feeds: { input_ids: b.inputIds, labels }, dims: { B, T }, lossTokens: countLoss(labels), tokens: b.tokenCount });
  }
  return out;
}
