/**
 * Background validation of fine-tune uploads (see check.ts for what is checked): the upload answers at once with
 * `status: 'uploaded'`, then the file ends `processed`, or `error` with `status_details` naming the first bad lines.
 * Validations in flight are kept per file id, so the jobs route (which queues a job only once its files are
 * `processed`) and tests await the same run instead of starting another.
 */
import { notFound } from '../errors.ts';
import type { Service } from '../service.ts';
import type { FileRecord } from '../store/types.ts';
import { checkTrainingFile, describeProblems } from './check.ts';
import { filePath } from './paths.ts';

const running = new Map<string, Promise<FileRecord>>();

/** The check's verdict as a patch; an unreadable file is an error too, told without the server's paths. */
async function verdict(svc: Service, id: string): Promise<Pick<FileRecord, 'status' | 'status_details'>> {
  try {
    const details = describeProblems(await checkTrainingFile(filePath(svc, id)));
    return { status: details === null ? 'processed' : 'error', status_details: details };
  } catch (e) {
    svc.log(`file ${id}: validation could not read the stored bytes: ${(e as Error).message}`);
    const code = (e as NodeJS.ErrnoException).code;
    return { status: 'error', status_details: `the stored file could not be read${code ? ` (${code})` : ''}: upload it again` };
  }
}

/**
 * Validates a fine-tune upload once (a second call while it runs gets the same promise). Resolves with the updated
 * record; rejects with a 404 ApiError when the file was deleted meanwhile. Never leaves a rejection unhandled.
 */
export function startValidation(svc: Service, id: string): Promise<FileRecord> {
  const inFlight = running.get(id);
  if (inFlight) return inFlight;
  const run = (async () => {
    const patch = await verdict(svc, id);
    const updated = await svc.store.updateFile(id, patch);
    if (!updated) throw notFound('file', id, 'file_id');
    return updated;
  })().finally(() => running.delete(id));
  running.set(id, run);
  run.catch((e: unknown) => svc.log(`file ${id}: validation ended without a verdict: ${(e as Error).message}`));
  return run;
}

/**
 * The file once validation has ended: at once when it has (`processed` / `error`, or a purpose that is not
 * validated); else the run in flight; else (a restart interrupted it, or another server took the upload) a new run.
 * Rejects with a 404 ApiError for an unknown file.
 */
export async function validationDone(svc: Service, id: string): Promise<FileRecord> {
  const inFlight = running.get(id);
  if (inFlight) return inFlight;
  const f = await svc.store.getFile(id);
  if (!f) throw notFound('file', id, 'file_id');
  if (f.status !== 'uploaded') return f;
  return startValidation(svc, id);
}
