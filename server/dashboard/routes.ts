/**
 * The web dashboard: `GET /` (the page) and its static assets under `/dashboard/`, plain files from this folder read
 * once at start. The page itself is open; every API call it makes sends the API key the user enters (kept in the
 * browser's localStorage). A strict Content-Security-Policy: nothing but this origin, no inline script or style.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Hono, type Context } from 'hono';
import type { Service } from '../service.ts';

const CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self'",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

const TYPES: Record<string, string> = {
  html: 'text/html; charset=utf-8',
  js: 'text/javascript; charset=utf-8',
  css: 'text/css; charset=utf-8',
  svg: 'image/svg+xml',
};

/** The files served: the page at `/`, the rest at `/dashboard/<name>`. */
export const DASHBOARD_ASSETS = ['app.js', 'api.js', 'chart.js', 'dom.js', 'style.css', 'icon.svg'] as const;

interface Asset {
  body: Uint8Array;
  type: string;
  etag: string;
}

function load(name: string): Asset {
  const body = new Uint8Array(readFileSync(new URL(name, import.meta.url)));
  const ext = name.slice(name.lastIndexOf('.') + 1);
  return { body, type: TYPES[ext] ?? 'application/octet-stream', etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 16)}"` };
}

function serve(c: Context, a: Asset): Response {
  const headers: Record<string, string> = {
    'content-type': a.type,
    'cache-control': 'no-cache',
    etag: a.etag,
    'content-security-policy': CSP,
    'x-content-type-options': 'nosniff',
    'referrer-policy': 'no-referrer',
    'x-frame-options': 'DENY',
  };
  if (c.req.header('if-none-match') === a.etag) return new Response(null, { status: 304, headers });
  return new Response(a.body, { headers });
}

export function dashboardRoutes(_svc: Service): Hono {
  const app = new Hono();
  const index = load('index.html');
  const assets = new Map(DASHBOARD_ASSETS.map((n) => [n, load(n)]));
  app.get('/', (c) => serve(c, index));
  app.get('/dashboard/:name', (c) => {
    const a = assets.get(c.req.param('name') as (typeof DASHBOARD_ASSETS)[number]);
    return a ? serve(c, a) : c.notFound();
  });
  return app;
}
