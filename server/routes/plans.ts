/**
 * `POST /v1/plans`: the memory plan of the job the same body would create, before anything is queued (the planner
 * traces the model from its config.json alone). With a server memory budget, the plan is fitted to it, or refused
 * with the planner's smallest change.
 */
import { Hono } from 'hono';
import { z } from 'zod';
import { jsonBody } from '../http.ts';
import { newJobId } from '../ids.ts';
import type { Service } from '../service.ts';
import { planJob, prepareJob } from './job-request.ts';

export function planRoutes(svc: Service): Hono {
  const app = new Hono();
  app.post('/plans', async (c) => {
    const body = await jsonBody(c, z.unknown(), svc.config.limits.bodyBytes);
    const job = await prepareJob(svc, body, newJobId());
    const plan = await planJob(svc, job);
    return c.json({ object: 'tuneforge.plan', budget: svc.config.memoryBudget ?? null, fits: true, ...plan });
  });
  return app;
}
