/**
 * The service as a plain fetch handler (hono): mount it under Bun.serve, Deno.serve or any runtime. OpenAI-compatible
 * routes live under /v1 behind the API key; /health and the dashboard's page are open.
 *
 * ```ts
 * const svc = await createService({ home: './tuneforge-home', allowModels: ['../shared/models/stories260k'] });
 * Bun.serve({ port: 8000, fetch: createApp(svc).fetch });
 * ```
 */
import { Hono } from 'hono';
import { requireApiKey } from './auth.ts';
import { dashboardRoutes } from './dashboard/routes.ts';
import { ApiError, errorResponse } from './errors.ts';
import { chatRoutes } from './routes/chat.ts';
import { fileRoutes } from './routes/files.ts';
import { jobRoutes } from './routes/jobs.ts';
import { openapiRoutes } from './routes/openapi.ts';
import { planRoutes } from './routes/plans.ts';
import type { Service } from './service.ts';

export function createApp(svc: Service): Hono {
  const app = new Hono();
  app.onError((e, c) => errorResponse(c, e));
  app.notFound((c) => errorResponse(c, new ApiError(404, `no route ${c.req.method} ${c.req.path}`, null, 'unknown_route')));
  app.get('/health', (c) => c.json({ status: 'ok', store: svc.store.kind }));
  app.route('/', dashboardRoutes(svc));
  app.route('/', openapiRoutes(svc));
  const v1 = new Hono();
  v1.use('*', requireApiKey(svc.keys));
  v1.route('/', fileRoutes(svc));
  v1.route('/', jobRoutes(svc));
  v1.route('/', planRoutes(svc));
  v1.route('/', chatRoutes(svc));
  app.route('/v1', v1);
  return app;
}
