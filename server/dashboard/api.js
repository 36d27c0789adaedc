// The API client: the key (localStorage), JSON calls with OpenAI's error envelope, downloads as Blobs, and the job
// event stream (server-sent events read with fetch, since EventSource cannot send the Authorization header).

const KEY_NAME = 'tuneforge.apiKey';

export const apiKey = {
  get: () => localStorage.getItem(KEY_NAME),
  set: (k) => localStorage.setItem(KEY_NAME, k),
  forget: () => localStorage.removeItem(KEY_NAME),
};

/** An API refusal: OpenAI's `{ error: { message, type, param, code } }` plus the HTTP status. */
export class ApiError extends Error {
  constructor(status, message, param = null, code = null) {
    super(message);
    this.status = status;
    this.param = param;
    this.code = code;
  }
}

/** Called with the error when the server answers 401 (the key is missing or wrong). */
let onUnauthorized = () => {};
export const setUnauthorizedHandler = (fn) => void (onUnauthorized = fn);

function headers(extra = {}, key = apiKey.get()) {
  return { ...(key ? { authorization: `Bearer ${key}` } : {}), ...extra };
}

async function refusal(res) {
  let message = `${res.status} ${res.statusText}`;
  let param = null;
  let code = null;
  try {
    const body = await res.json();
    if (body?.error) ({ message, param = null, code = null } = body.error);
  } catch {
    // not the JSON envelope: keep the status line
  }
  const e = new ApiError(res.status, message, param, code);
  if (res.status === 401) onUnauthorized(e);
  return e;
}

/**
 * `api('/fine_tuning/jobs', { method: 'POST', json: body })`: the parsed JSON answer, or an ApiError. `form` sends
 * multipart (a FormData); `key` overrides the stored key (to check one before keeping it).
 */
export async function api(path, { method = 'GET', json, form, key, signal } = {}) {
  const init = { method, signal, cache: 'no-store', headers: headers(json !== undefined ? { 'content-type': 'application/json' } : {}, key ?? apiKey.get()) };
  if (json !== undefined) init.body = JSON.stringify(json);
  else if (form) init.body = form;
  const res = await fetch(`/v1${path}`, init);
  if (!res.ok) throw await refusal(res);
  return res.json();
}

export async function apiBlob(path) {
  const res = await fetch(`/v1${path}`, { headers: headers(), cache: 'no-store' });
  if (!res.ok) throw await refusal(res);
  return res.blob();
}

/**
 * A server-sent events parser (the WHATWG event-stream format): feed it text as it arrives, get back the complete
 * messages `{ id, event, data }`. Comments (`: keep-alive`) are skipped; `id` is undefined when a block has none.
 */
export class SseParser {
  buffer = '';
  push(text) {
    this.buffer += text;
    const out = [];
    for (;;) {
      const m = /\r\n\r\n|\n\n|\r\r/.exec(this.buffer);
      if (!m) break;
      const block = this.buffer.slice(0, m.index);
      this.buffer = this.buffer.slice(m.index + m[0].length);
      const msg = { id: undefined, event: 'message', data: '' };
      const data = [];
      for (const line of block.split(/\r\n|\n|\r/)) {
        if (line === '' || line.startsWith(':')) continue;
        const colon = line.indexOf(':');
        const field = colon < 0 ? line : line.slice(0, colon);
        let value = colon < 0 ? '' : line.slice(colon + 1);
        if (value.startsWith(' ')) value = value.slice(1);
        if (field === 'data') data.push(value);
        else if (field === 'event') msg.event = value;
        else if (field === 'id') msg.id = value;
      }
      if (data.length === 0 && msg.id === undefined) continue;
      msg.data = data.join('\n');
      out.push(msg);
    }
    return out;
  }
}

const sleep = (ms, signal) => new Promise((done) => {
  const t = setTimeout(done, ms);
  signal.addEventListener('abort', () => { clearTimeout(t); done(); }, { once: true });
});

/**
 * Follows a job's events: every event from the start, then live ones, until the server ends the stream (the job
 * finished). A dropped connection is reopened with `Last-Event-ID`, so nothing is missed or repeated.
 * `on`: { event(e), state('live' | 'reconnecting' | 'ended' | 'error', detail) }. Returns a function that stops it.
 */
export function followEvents(jobId, on) {
  const ctl = new AbortController();
  const { signal } = ctl;
  let lastId;
  let delay = 500;
  (async () => {
    while (!signal.aborted) {
      let ended = false;
      try {
        const extra = { accept: 'text/event-stream', ...(lastId ? { 'last-event-id': lastId } : {}) };
        const res = await fetch(`/v1/fine_tuning/jobs/${encodeURIComponent(jobId)}/events?stream=true`, { headers: headers(extra), signal, cache: 'no-store' });
        if (!res.ok) throw await refusal(res);
        on.state?.('live');
        const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
        const parser = new SseParser();
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          delay = 500;
          for (const m of parser.push(value)) {
            if (m.id !== undefined) lastId = m.id;
            if (m.event === 'end') ended = true;
            else if (m.data) on.event(JSON.parse(m.data));
          }
        }
      } catch (e) {
        if (signal.aborted) return;
        if (e instanceof ApiError && e.status < 500 && e.status !== 429) {
          on.state?.('error', e);
          return;
        }
      }
      if (ended) {
        on.state?.('ended');
        return;
      }
      if (signal.aborted) return;
      on.state?.('reconnecting');
      await sleep(delay, signal);
      delay = Math.min(delay * 2, 10_000);
    }
  })();
  return () => ctl.abort();
}
