/**
 * OpenAI's error envelope, `{ error: { message, type, param, code } }`. The official client retries 408, 409, 429
 * and 5xx, so refusals that must not be retried use other 4xx codes.
 */
import type { Context } from 'hono';
import type { ContentfulStatusCode } from 'hono/utils/http-status';

export class ApiError extends Error {
  constructor(
    readonly status: ContentfulStatusCode,
    message: string,
    readonly param: string | null = null,
    readonly code: string | null = null,
    readonly type = status === 401 ? 'authentication_error' : status === 404 ? 'not_found_error' : status >= 500 ? 'server_error' : 'invalid_request_error',
  ) {
    super(message);
  }
}

export const notFound = (what: string, id: string, param = 'id'): ApiError => new ApiError(404, `No ${what} with id '${id}'`, param, `${what.replace(/ /g, '_')}_not_found`);

/** Several problems (e.g. a job's config) in one 400: the first names the param, the message lists them all. */
export function invalid(problems: readonly { param: string; message: string }[]): ApiError {
  const message = problems.length === 1 ? `${problems[0]!.param}: ${problems[0]!.message}` : problems.map((p) => `${p.param}: ${p.message}`).join('; ');
  return new ApiError(400, message, problems[0]?.param ?? null, 'invalid_request');
}

export function errorResponse(c: Context, e: unknown): Response {
  if (e instanceof ApiError) return c.json({ error: { message: e.message, type: e.type, param: e.param, code: e.code } }, e.status);
  console.error(e);
  return c.json({ error: { message: 'internal error: see the server log', type: 'server_error', param: null, code: null } }, 500);
}
