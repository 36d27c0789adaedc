/**
 * A small, real HTTP server on 127.0.0.1 that speaks the parts of the Hugging Face Hub protocol that
 * `@huggingface/hub` uses for downloads, serving local folders as model repos. For tests and offline demos.
 *
 * Endpoints (model repos only; `{rev}` is `main`, `HEAD` or the repo's fake commit hash, URL-encoded):
 *   GET  /api/models/{owner}/{name}/revision/{rev}   model info: sha, siblings, ...      (modelInfo)
 *   POST /api/models/{owner}/{name}/paths-info/{rev} {paths, expand} → entries            (pathsInfo)
 *   GET  /api/models/{owner}/{name}/tree/{rev}[/dir] ?recursive=true → entries           (listFiles)
 *   GET|HEAD /{owner}/{name}/resolve/{rev}/{path}    the file; Range; ETag, X-Repo-Commit, X-Linked-Etag/Size
 * Errors are JSON `{error}` with `X-Error-Code`: RepoNotFound, RevisionNotFound, EntryNotFound (404);
 * with `token` set, requests without `Authorization: Bearer <token>` get 401.
 */
import { blobEtag, directoriesOf, loadRepo } from './test-server-repo.ts';
import type { RepoFile, ServedRepo } from './test-server-repo.ts';

export { fakeCommit } from './test-server-repo.ts';

/** Options of {@link startHubServer}. */
export interface HubServerOptions {
  /** Repo id (`owner/name`) → local folder served as that repo. */
  readonly repos: Readonly<Record<string, string>>;
  /** When set, every request must carry `Authorization: Bearer <token>`. */
  readonly token?: string | undefined;
}

/** A running test Hub. */
export interface HubServer {
  /** Base URL, e.g. `http://127.0.0.1:54321` (use as `endpoint` / `HF_ENDPOINT`). */
  readonly url: string;
  /** Every request received, as `METHOD /path?query`, in order. */
  readonly requests: string[];
  /** The fake commit hash that `main` resolves to in a repo. */
  commitOf(repo: string): string;
  /** Stops the server and closes open connections. */
  close(): Promise<void>;
}

const DATE = '2024-01-01T00:00:00.000Z';

function json(body: unknown, status = 200, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), { status, headers: { 'Content-Type': 'application/json', ...headers } });
}

function fail(status: number, code: string | null, message: string): Response {
  return json({ error: message }, status, code === null ? {} : { 'X-Error-Code': code });
}

function resolveRevision(repo: ServedRepo, rev: string): string | undefined {
  return rev === 'main' || rev === 'HEAD' || rev === repo.commit ? repo.commit : undefined;
}

function entry(repo: ServedRepo, f: RepoFile, expand: boolean): Record<string, unknown> {
  return {
    type: 'file',
    oid: f.oid,
    size: f.size,
    path: f.path,
    ...(f.lfs && { lfs: f.lfs }),
    ...(expand && { lastCommit: { id: repo.commit, title: 'Upload model', date: DATE }, securityFileStatus: { status: 'safe' } }),
  };
}

function dirEntry(path: string): Record<string, unknown> {
  return { type: 'directory', oid: '0'.repeat(40), size: 0, path };
}

function contentType(path: string): string {
  if (path.endsWith('.json')) return 'application/json';
  if (/\.(md|txt|jinja)$/.test(path)) return 'text/plain; charset=utf-8';
  return 'application/octet-stream';
}

function serveFile(req: Request, repo: ServedRepo, f: RepoFile): Response {
  const etag = `"${blobEtag(f)}"`;
  const headers: Record<string, string> = {
    ETag: etag,
    'X-Repo-Commit': repo.commit,
    'Accept-Ranges': 'bytes',
    'Content-Type': contentType(f.path),
    ...(f.lfs && { 'X-Linked-Etag': etag, 'X-Linked-Size': String(f.size) }),
  };
  let start = 0;
  let end = f.size - 1;
  let status = 200;
  const range = req.headers.get('Range');
  const m = range === null ? null : /^bytes=(\d*)-(\d*)$/.exec(range.trim());
  if (m !== null && (m[1] !== '' || m[2] !== '')) {
    if (m[1] === '') start = Math.max(0, f.size - Number(m[2]));
    else {
      start = Number(m[1]);
      if (m[2] !== '') end = Math.min(end, Number(m[2]));
    }
    if (start > end || start >= f.size) {
      return new Response(null, { status: 416, headers: { 'Content-Range': `bytes */${f.size}` } });
    }
    status = 206;
    headers['Content-Range'] = `bytes ${start}-${end}/${f.size}`;
  }
  if (req.method === 'HEAD') {
    return new Response(null, { status, headers: { ...headers, 'Content-Length': String(end - start + 1) } });
  }
  return new Response(Bun.file(f.absPath).slice(start, end + 1), { status, headers });
}

async function route(req: Request, repos: ReadonlyMap<string, ServedRepo>): Promise<Response> {
  const url = new URL(req.url);
  const seg = url.pathname.split('/').filter((s) => s !== '').map(decodeURIComponent);
  const api = seg[0] === 'api';
  if (api && seg[1] !== 'models') return fail(404, null, 'Only model repos are served');
  const [owner, name, kind, rev, ...rest] = api ? seg.slice(2) : seg;
  const repo = repos.get(`${owner}/${name}`);
  if (repo === undefined) return fail(404, 'RepoNotFound', 'Repository not found');
  const commit = resolveRevision(repo, rev ?? 'HEAD');
  if (commit === undefined) return fail(404, 'RevisionNotFound', `Invalid rev id: ${rev}`);
  const path = rest.join('/');

  if (!api && kind === 'resolve' && (req.method === 'GET' || req.method === 'HEAD')) {
    const f = repo.files.get(path);
    return f === undefined ? fail(404, 'EntryNotFound', 'Entry not found') : serveFile(req, repo, f);
  }
  if (api && (kind === 'revision' || kind === undefined) && req.method === 'GET') {
    return json({
      _id: repo.commit.slice(0, 24),
      id: repo.id,
      sha: commit,
      siblings: [...repo.files.keys()].map((rfilename) => ({ rfilename })),
      private: false,
      gated: false,
      downloads: 0,
      likes: 0,
      lastModified: DATE,
      pipeline_tag: 'text-generation',
      tags: [],
    });
  }
  if (api && kind === 'paths-info' && req.method === 'POST') {
    const body = (await req.json()) as { paths?: unknown; expand?: unknown };
    const paths = Array.isArray(body.paths) ? body.paths.filter((p): p is string => typeof p === 'string') : [];
    const dirs = new Set(directoriesOf(repo.files.keys()));
    return json(
      paths.flatMap((p) => {
        const f = repo.files.get(p);
        if (f !== undefined) return [entry(repo, f, body.expand === true)];
        return dirs.has(p) ? [dirEntry(p)] : [];
      }),
    );
  }
  if (api && kind === 'tree' && req.method === 'GET') {
    const recursive = url.searchParams.get('recursive') === 'true';
    const expand = url.searchParams.get('expand') === 'true';
    const prefix = path === '' ? '' : `${path}/`;
    const under = (p: string): boolean => p.startsWith(prefix) && (recursive || !p.slice(prefix.length).includes('/'));
    const dirs = directoriesOf(repo.files.keys()).filter(under).map(dirEntry);
    const files = [...repo.files.values()].filter((f) => under(f.path)).map((f) => entry(repo, f, expand));
    if (path !== '' && dirs.length === 0 && files.length === 0) return fail(404, 'EntryNotFound', 'Entry not found');
    return json([...dirs, ...files]);
  }
  return fail(404, null, `Not found: ${req.method} ${url.pathname}`);
}

/** Starts the server on 127.0.0.1 with an OS-assigned port. Folders are hashed once at start. */
export async function startHubServer(opts: HubServerOptions): Promise<HubServer> {
  const repos = new Map<string, ServedRepo>();
  for (const [id, folder] of Object.entries(opts.repos)) repos.set(id, await loadRepo(id, folder));
  const requests: string[] = [];
  const server = Bun.serve({
    hostname: '127.0.0.1',
    port: 0,
    async fetch(req: Request): Promise<Response> {
      const url = new URL(req.url);
      requests.push(`${req.method} ${url.pathname}${url.search}`);
      if (opts.token !== undefined && req.headers.get('Authorization') !== `Bearer ${opts.token}`) {
        return fail(401, null, 'Invalid credentials in Authorization header');
      }
      try {
        return await route(req, repos);
      } catch (e) {
        return fail(500, null, `test hub server error: ${(e as Error).message}`);
      }
    },
  });
  return {
    url: `http://127.0.0.1:${server.port}`,
    requests,
    commitOf(repo: string): string {
      const r = repos.get(repo);
      if (r === undefined) throw new Error(`test hub server does not serve ${repo}`);
      return r.commit;
    },
    async close(): Promise<void> {
      await server.stop(true);
    },
  };
}
