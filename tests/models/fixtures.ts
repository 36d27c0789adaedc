/** Helpers shared by the tests that compare against ../shared/fixtures. */
import { join } from 'node:path';
import type { HostTensor } from '../../core/index.ts';
import { readAll } from '../../core/io/safetensors.ts';

export const SHARED = join(import.meta.dir, '../../../shared');
export const FIXTURES = join(SHARED, 'fixtures/stories260k');
export const STORIES = join(SHARED, 'models/stories260k');

/** The fixture batch stores ids as F32; the model takes int64. */
export async function fixtureBatch(): Promise<{ input_ids: HostTensor; labels: HostTensor }> {
  const b = await readAll(join(FIXTURES, 'batch.safetensors'));
  const toInt = (t: HostTensor): HostTensor => ({ dtype: 'int64', shape: t.shape, data: BigInt64Array.from(t.data as Float32Array, (v) => BigInt(v)) });
  return { input_ids: toInt(b.get('input_ids')!), labels: toInt(b.get('labels')!) };
}

export function maxRelError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let diff = 0, scale = 0;
  for (let i = 0; i < b.length; i++) {
    diff = Math.max(diff, Math.abs(a[i]! - b[i]!));
    scale = Math.max(scale, Math.abs(b[i]!));
  }
  return diff / scale;
}

