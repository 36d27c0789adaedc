/** Request helpers shared by the routes: JSON bodies (bounded; an empty body is `{}`), list paging, ids. */
import type { Context } from 'hono';
import type { z } from 'zod';
import { ApiError } from './errors.ts';
import { ID_PATTERN } from './ids.ts';

/**
 * The request's JSON body, at most `limit` bytes, parsed with `schema`. The official client sends
 * `Content-Type: application/json` with no body on cancel/pause/resume: an empty body reads as `{}`.
 */
export async function jsonBody<S extends z.ZodType>(c: Context, schema: S, limit: number): Promise<z.output<S>> {
  const declared = Number(c.req.header('content-length') ?? 0);
  if (declared > limit) throw new ApiError(413, `request body of ${declared} bytes is over this server's limit of ${limit} bytes`, null, 'body_too_large');
  const text = await boundedText(c.req.raw, limit);
  let raw: unknown = {};
  if (text.trim() !== '') {
    try {
      raw = JSON.parse(text);
    } catch (e) {
      throw new ApiError(400, `request body is not valid JSON (${(e as Error).message})`, null, 'invalid_json');
    }
  }
  const r = schema.safeParse(raw);
  if (r.success) return r.data;
  const issues = r.error.issues;
  const param = issues[0]?.path.join('.') || null;
  throw new ApiError(400, issues.map((i) => `${i.path.join('.') || 'body'}: ${i.message}`).join('; '), param, 'invalid_request');
}

async function boundedText(req: Request, limit: number): Promise<string> {
  if (!req.body) return '';
  const reader = req.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > limit) {
      await reader.cancel();
      throw new ApiError(413, `request body is over this server's limit of ${limit} bytes`, null, 'body_too_large');
    }
    chunks.push(value);
  }
  return new TextDecoder().decode(Buffer.concat(chunks));
}

/** `limit` (1..max, default 20) and an `after` cursor that must look like an id. */
export function pageParams(c: Context, max: number): { limit: number; after?: string } {
  const rawLimit = c.req.query('limit');
  const limit = rawLimit === undefined ? 20 : Number(rawLimit);
  if (!Number.isInteger(limit) || limit < 1 || limit > max) throw new ApiError(400, `limit must be an integer from 1 to ${max}, got '${rawLimit}'`, 'limit', 'invalid_limit');
  const after = c.req.query('after');
  if (after !== undefined && !ID_PATTERN.test(after)) throw new ApiError(400, `after must be an id from a previous page, got '${after}'`, 'after', 'invalid_cursor');
  return { limit, ...(after ? { after } : {}) };
}

/** A path parameter that must be an id of the given prefix (never a path). */
export function idParam(c: Context, name: string, prefix: string): string {
  const id = c.req.param(name) ?? '';
  if (!id.startsWith(prefix) || !ID_PATTERN.test(id)) throw new ApiError(404, `'${id}' is not a valid ${prefix}… id`, name, 'invalid_id');
  return id;
}
