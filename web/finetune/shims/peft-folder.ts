/**
 * plugins/peft/folder.ts in the page's bundle (build.ts resolves it here): PEFT adapter folders are files on disk,
 * which a page has none of. The lora plugin imports them for `export:artifacts`, which the page never runs; the
 * prefix is the real one (the test compares the two).
 */
import type { HostTensor } from '../../../core/ir/host.ts';

export const PEFT_PREFIX = 'base_model.model.';

const noFiles = (what: string): Error => new Error(`${what}: PEFT adapter folders are files on disk; a browser page has no file system`);

export async function readAdapterFolder(dir: string): Promise<{ configPath: string; config: Record<string, unknown>; tensors: Map<string, HostTensor> }> {
  throw noFiles(`reading ${dir}`);
}

export async function writeAdapterFolder(dir: string): Promise<string[]> {
  throw noFiles(`writing ${dir}`);
}
