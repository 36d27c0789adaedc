/**
 * The architecture a local model folder's config.json names, read before any weight loads, so an export can refuse
 * it with its own reason (the model loader would refuse an unknown one for training reasons). Undefined for a Hub id
 * or an unreadable folder: those are checked after loading, by the writer.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';

export async function folderArchitecture(source: string): Promise<{ arch: string | undefined; where: string } | undefined> {
  const where = join(source, 'config.json');
  try {
    return { arch: (JSON.parse(await readFile(where, 'utf8')) as { architectures?: string[] }).architectures?.[0], where };
  } catch {
    return undefined;
  }
}
