/**
 * A `fetch` handed to `@huggingface/hub` in place of the global one. It
 *  - adds `Authorization: Bearer <token>` for requests to the endpoint's origin. We do this instead of passing
 *    `accessToken` to the library because the library rejects tokens that do not start with "hf_"
 *    (`checkAccessToken`), which breaks self-hosted/mirror endpoints with other token formats;
 *  - remembers the status and `X-Error-Code` of the last failed response (the library's HubApiError drops
 *    headers, so RepoNotFound / RevisionNotFound / EntryNotFound would be indistinguishable);
 *  - turns rejected fetches (connection refused, DNS...) into a HubError('network') with a useful message;
 *  - reports download progress by counting the body bytes of full (non-Range) GETs of `/resolve/` URLs.
 */
import type { FailedResponse } from './errors.ts';
import { networkError } from './errors.ts';

/** Shared state of one resolveModel call. */
export interface FetchState {
  readonly endpoint: string;
  readonly token: string | undefined;
  lastFailure?: FailedResponse;
}

/** Called with the running byte count of a file body, and its total when the server sent Content-Length. */
export type BodyProgress = (loaded: number, total: number | undefined) => void;

function requestUrl(input: string | URL | Request): string {
  if (typeof input === 'string') return input;
  if (input instanceof URL) return input.href;
  return input.url;
}

function countingBody(body: ReadableStream<Uint8Array>, total: number | undefined, onProgress: BodyProgress): ReadableStream<Uint8Array> {
  let loaded = 0;
  return body.pipeThrough(
    new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, controller) {
        loaded += chunk.byteLength;
        onProgress(loaded, total);
        controller.enqueue(chunk);
      },
    }),
  );
}

/** Builds the wrapped fetch; `onProgress` (optional) is bound to the one file this fetch will download. */
export function createHubFetch(state: FetchState, onProgress?: BodyProgress): typeof fetch {
  const origin = new URL(state.endpoint).origin;
  const wrapped = async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    const url = requestUrl(input);
    const headers = new Headers(init?.headers ?? (input instanceof Request ? input.headers : undefined));
    if (state.token !== undefined && !headers.has('Authorization') && new URL(url).origin === origin) {
      headers.set('Authorization', `Bearer ${state.token}`);
    }
    let resp: Response;
    try {
      resp = await fetch(input, { ...init, headers });
    } catch (e) {
      throw networkError(url, e);
    }
    if (!resp.ok) {
      state.lastFailure = { status: resp.status, errorCode: resp.headers.get('X-Error-Code'), url };
      return resp;
    }
    const method = (init?.method ?? (input instanceof Request ? input.method : 'GET')).toUpperCase();
    if (onProgress === undefined || method !== 'GET' || headers.has('Range') || resp.body === null || !url.includes('/resolve/')) {
      return resp;
    }
    const len = Number(resp.headers.get('Content-Length'));
    const total = Number.isFinite(len) && resp.headers.has('Content-Length') ? len : undefined;
    return new Response(countingBody(resp.body, total, onProgress), {
      status: resp.status,
      statusText: resp.statusText,
      headers: resp.headers,
    });
  };
  // Bun's `typeof fetch` also carries `preconnect`; keep it so the wrapper is a drop-in replacement.
  return Object.assign(wrapped, { preconnect: fetch.preconnect });
}
