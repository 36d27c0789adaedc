/**
 * safetensors I/O entry point: single files (re-exported from safetensors-read/-write) and Hugging Face
 * style checkpoints, i.e. `model.safetensors` or `model.safetensors.index.json` plus its shards.
 */
import { existsSync } from 'node:fs';
import { readdir, readFile, stat } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import type { DType } from '../ir/dtype.ts';
import type { HostTensor } from '../ir/host.ts';
import {
  missingMessage, openSafetensors, type ReadOptions, type SafetensorsFile, type TensorInfo, type TensorSource,
} from './safetensors-read.ts';

export {
  checkShape, DTYPE_TO_ST, openSafetensors, ST_TO_DTYPE,
  type ReadOptions, type SafetensorsFile, type TensorInfo, type TensorSource,
} from './safetensors-read.ts';
export { encodeSafetensors, writeSafetensors, type TensorMap } from './safetensors-write.ts';
export { bf16ToF32, castHostTensor, f16ToF32, f32ToBf16, f32ToF16 } from './half.ts';

/** A checkpoint made of one or more safetensors files, read as one. */
export interface Checkpoint extends TensorSource {
  /** The file or index the checkpoint was opened from. */
  readonly path: string;
  /** The safetensors files it spans. */
  readonly files: readonly string[];
}

class MultiFile implements Checkpoint {
  constructor(
    readonly path: string,
    readonly names: readonly string[],
    private readonly owner: ReadonlyMap<string, SafetensorsFile>,
    private readonly shards: readonly SafetensorsFile[],
    readonly metadata: Readonly<Record<string, string>>,
  ) {}

  get files(): readonly string[] {
    return this.shards.map((s) => s.path);
  }

  has(name: string): boolean {
    return this.owner.has(name);
  }

  info(name: string): TensorInfo {
    return this.shard(name).info(name);
  }

  read(name: string, opts?: ReadOptions): Promise<HostTensor> {
    return this.shard(name).read(name, opts);
  }

  async close(): Promise<void> {
    await Promise.all(this.shards.map((s) => s.close()));
  }

  private shard(name: string): SafetensorsFile {
    const s = this.owner.get(name);
    if (s === undefined) throw new Error(missingMessage(this.path, name, this.names));
    return s;
  }
}

function fromFile(f: SafetensorsFile): Checkpoint {
  return new MultiFile(f.path, f.names, new Map(f.names.map((n) => [n, f])), [f], f.metadata);
}

async function openIndex(indexPath: string): Promise<Checkpoint> {
  let index: unknown;
  try {
    index = JSON.parse(await readFile(indexPath, 'utf8'));
  } catch (e) {
    throw new Error(`${indexPath}: invalid index JSON: ${e instanceof Error ? e.message : String(e)}`);
  }
  const weightMap = typeof index === 'object' && index !== null ? (index as Record<string, unknown>)['weight_map'] : undefined;
  if (typeof weightMap !== 'object' || weightMap === null || Array.isArray(weightMap)) {
    throw new Error(`${indexPath}: expected an object with a "weight_map" of tensor name -> shard file`);
  }
  const byShard = new Map<string, string[]>();
  for (const [name, shard] of Object.entries(weightMap)) {
    if (typeof shard !== 'string') {
      throw new Error(`${indexPath}: weight_map["${name}"] must be a file name, found ${JSON.stringify(shard)}`);
    }
    byShard.set(shard, [...(byShard.get(shard) ?? []), name]);
  }
  const dir = dirname(indexPath);
  const missing = [...byShard].filter(([shard]) => !existsSync(resolve(dir, shard)));
  if (missing.length > 0) {
    const list = missing.map(([s, names]) => `"${s}" (${names.length} tensors, e.g. "${names[0]}")`).join(', ');
    throw new Error(`${indexPath}: shard file${missing.length > 1 ? 's' : ''} missing in ${dir}: ${list}`);
  }
  const opened = await Promise.allSettled([...byShard.keys()].map((s) => openSafetensors(resolve(dir, s))));
  const shards = opened.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
  const failed = opened.find((r) => r.status === 'rejected');
  if (failed !== undefined) {
    await Promise.all(shards.map((s) => s.close()));
    throw failed.reason;
  }
  const owner = new Map<string, SafetensorsFile>();
  const metadata: Record<string, string> = {};
  for (const [i, [shardName, names]] of [...byShard].entries()) {
    const shard = shards[i]!;
    Object.assign(metadata, shard.metadata);
    for (const name of names) {
      if (!shard.has(name)) {
        await Promise.all(shards.map((s) => s.close()));
        throw new Error(`${indexPath}: weight_map puts tensor "${name}" in "${shardName}", but ${missingMessage(shard.path, name, shard.names)}`);
      }
      owner.set(name, shard);
    }
  }
  const meta = (index as Record<string, unknown>)['metadata'];
  if (typeof meta === 'object' && meta !== null) {
    for (const [k, v] of Object.entries(meta)) metadata[k] = typeof v === 'string' ? v : JSON.stringify(v);
  }
  return new MultiFile(indexPath, Object.keys(weightMap), owner, shards, metadata);
}

/**
 * Opens a checkpoint: a `.safetensors` file, a `*.safetensors.index.json` (sharded), or a directory holding
 * `model.safetensors.index.json` or `model.safetensors` (else the only index or only .safetensors file there).
 * Metadata: a single file's `__metadata__`; for an index, all shards' `__metadata__` overlaid by the index's
 * `metadata` (non-string values JSON-encoded, e.g. total_size).
 */
export async function openCheckpoint(dirOrFile: string): Promise<Checkpoint> {
  let isDir: boolean;
  try {
    isDir = (await stat(dirOrFile)).isDirectory();
  } catch {
    throw new Error(`${dirOrFile}: no such checkpoint file or directory`);
  }
  if (!isDir) {
    return dirOrFile.endsWith('.json') ? openIndex(dirOrFile) : fromFile(await openSafetensors(dirOrFile));
  }
  const idx = join(dirOrFile, 'model.safetensors.index.json');
  if (existsSync(idx)) return openIndex(idx);
  const single = join(dirOrFile, 'model.safetensors');
  if (existsSync(single)) return fromFile(await openSafetensors(single));
  const files = await readdir(dirOrFile);
  const indexes = files.filter((f) => f.endsWith('.safetensors.index.json'));
  const tensorFiles = files.filter((f) => f.endsWith('.safetensors'));
  if (indexes.length === 1) return openIndex(join(dirOrFile, indexes[0]!));
  if (indexes.length === 0 && tensorFiles.length === 1) return fromFile(await openSafetensors(join(dirOrFile, tensorFiles[0]!)));
  const found = [...indexes, ...tensorFiles].map((f) => basename(f)).join(', ') || 'none';
  throw new Error(
    `${dirOrFile}: expected model.safetensors or model.safetensors.index.json; found safetensors files: ${found}`,
  );
}

export interface ReadAllOptions {
  readonly as?: DType;
  /** Only read the tensors this returns true for. */
  readonly filter?: (name: string) => boolean;
}

/** Reads every tensor of a checkpoint (file, index or directory) into memory, in name order of the source. */
export async function readAll(path: string, opts?: ReadAllOptions): Promise<Map<string, HostTensor>> {
  const ckpt = await openCheckpoint(path);
  try {
    const out = new Map<string, HostTensor>();
    for (const name of ckpt.names) {
      if (opts?.filter === undefined || opts.filter(name)) {
        out.set(name, await ckpt.read(name, opts?.as === undefined ? undefined : { as: opts.as }));
      }
    }
    return out;
  } finally {
    await ckpt.close();
  }
}
