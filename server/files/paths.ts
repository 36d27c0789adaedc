/**
 * Where an upload's bytes live: `<home>/files/<id>.jsonl`, named by the id alone, never by anything a client sent.
 * The `.jsonl` suffix is for the trainer: core/data picks its reader by extension (loadDataset refuses a file
 * without one), and fine-tuning files are JSON Lines. An upload is written to `<id>.jsonl.part` and renamed when
 * complete, so no reader ever sees half a file and a crash leaves only `.part` debris.
 */
import { join } from 'node:path';
import { ID_PATTERN } from '../ids.ts';
import type { Service } from '../service.ts';

function checked(fileId: string): string {
  // Defence in depth: routes check ids already (idParam), but no caller can turn this into another path.
  if (!ID_PATTERN.test(fileId) || !fileId.startsWith('file-')) throw new Error(`internal: '${fileId}' is not a file id (file-<base62>)`);
  return fileId;
}

/** The stored bytes of a file (what the jobs route hands the trainer). */
export function filePath(svc: Pick<Service, 'paths'>, fileId: string): string {
  return join(svc.paths.files, `${checked(fileId)}.jsonl`);
}

/** Where an upload is written while it streams in. */
export function partialPath(svc: Pick<Service, 'paths'>, fileId: string): string {
  return `${filePath(svc, fileId)}.part`;
}
