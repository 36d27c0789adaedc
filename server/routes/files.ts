/**
 * OpenAI's Files API as the official client calls it: upload (multipart, streamed to disk, size-limited), list
 * (newest first, `after` / `limit` / `order` / `purpose`), retrieve, content (streamed from disk), delete (the row and
 * the bytes). Fine-tune uploads are validated in the background: `status` goes `uploaded` → `processed` | `error`.
 */
import { rm } from 'node:fs/promises';
import { Hono, type Context } from 'hono';
import { ApiError, notFound } from '../errors.ts';
import { filePath } from '../files/paths.ts';
import { openFileStream } from '../files/read-stream.ts';
import { receiveUpload } from '../files/upload.ts';
import { startValidation } from '../files/validate.ts';
import { idParam, pageParams } from '../http.ts';
import { fileObject, list } from '../objects.ts';
import type { Service } from '../service.ts';
import type { FileRecord } from '../store/types.ts';

async function getFile(svc: Service, c: Context): Promise<FileRecord> {
  const id = idParam(c, 'file_id', 'file-'); // `../../etc/passwd` and the like end here, as a 404
  const f = await svc.store.getFile(id);
  if (!f) throw notFound('file', id, 'file_id');
  return f;
}

function orderParam(c: Context): 'asc' | 'desc' {
  const order = c.req.query('order') ?? 'desc';
  if (order !== 'asc' && order !== 'desc') throw new ApiError(400, `order must be 'asc' or 'desc', got '${order}'`, 'order', 'invalid_order');
  return order;
}

export function fileRoutes(svc: Service): Hono {
  const app = new Hono();

  app.post('/files', async (c) => {
    const f = await receiveUpload(svc, c.req.raw);
    // Not awaited: the client gets `uploaded` now and polls (or the jobs route awaits validationDone).
    if (f.status === 'uploaded') void startValidation(svc, f.id);
    return c.json(fileObject(f));
  });

  app.get('/files', async (c) => {
    const purpose = c.req.query('purpose');
    const page = await svc.store.listFiles({ ...pageParams(c, svc.config.limits.listLimit), order: orderParam(c), ...(purpose ? { purpose } : {}) });
    return c.json(list(page.data.map(fileObject), page.has_more, true));
  });

  app.get('/files/:file_id', async (c) => c.json(fileObject(await getFile(svc, c))));

  app.get('/files/:file_id/content', async (c) => {
    const f = await getFile(svc, c);
    const opened = await openFileStream(filePath(svc, f.id));
    if (!opened) throw new ApiError(404, `file ${f.id} is recorded but its bytes are missing from this server's disk: upload it again`, 'file_id', 'file_content_missing');
    return c.body(opened.stream, 200, {
      'content-type': 'application/octet-stream',
      'content-length': String(opened.size),
      // RFC 6266 / 5987: percent-encoded, so no filename can break out of the header.
      'content-disposition': `attachment; filename*=UTF-8''${encodeURIComponent(f.filename)}`,
    });
  });

  app.delete('/files/:file_id', async (c) => {
    const id = idParam(c, 'file_id', 'file-');
    if (!(await svc.store.deleteFile(id))) throw notFound('file', id, 'file_id');
    // The row goes first: a failed removal leaves unreachable bytes (logged), never a row whose bytes are gone.
    await rm(filePath(svc, id), { force: true }).catch((e: unknown) => svc.log(`file ${id}: deleted, but its bytes could not be removed: ${(e as Error).message}`));
    return c.json({ id, object: 'file' as const, deleted: true });
  });

  return app;
}
