/**
 * `GET /openapi.json`: the service described as OpenAPI 3.1, with request bodies generated from the same zod schemas
 * the routes validate with (so the document cannot drift from what the server accepts).
 */
import { Hono } from 'hono';
import { z } from 'zod';
import { jobCreateSchema } from '../jobs/schema.ts';
import type { Service } from '../service.ts';
import { completionSchema, chatCompletionSchema } from '../generation/schemas.ts';

const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });
const json = (schema: unknown) => ({ content: { 'application/json': { schema } } });
const ok = (description: string, schema: unknown = { type: 'object' }) => ({ 200: { description, ...json(schema) }, default: { description: 'an OpenAI error envelope', ...json(ref('Error')) } });
const listOf = (item: string) => ({ type: 'object', properties: { object: { const: 'list' }, data: { type: 'array', items: ref(item) }, has_more: { type: 'boolean' } }, required: ['object', 'data', 'has_more'] });
const paging = [
  { name: 'after', in: 'query', schema: { type: 'string' }, description: 'the last id of the previous page (exclusive)' },
  { name: 'limit', in: 'query', schema: { type: 'integer', minimum: 1 } },
];
const jobId = { name: 'fine_tuning_job_id', in: 'path', required: true, schema: { type: 'string', pattern: '^ftjob-' } };
const fileId = { name: 'file_id', in: 'path', required: true, schema: { type: 'string', pattern: '^file-' } };

export function openapiDocument(): Record<string, unknown> {
  const schema = (s: z.ZodType) => z.toJSONSchema(s, { io: 'input', unrepresentable: 'any' });
  return {
    openapi: '3.1.0',
    info: { title: 'tuneforge', version: '0.1.0', description: "An OpenAI-compatible fine-tuning service: point the official client's baseURL at /v1." },
    servers: [{ url: '/v1' }],
    security: [{ bearer: [] }],
    components: {
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } },
      schemas: {
        Error: { type: 'object', properties: { error: { type: 'object', properties: { message: { type: 'string' }, type: { type: 'string' }, param: { type: ['string', 'null'] }, code: { type: ['string', 'null'] } }, required: ['message', 'type', 'param', 'code'] } }, required: ['error'] },
        JobCreate: schema(jobCreateSchema),
        ChatCompletionCreate: schema(chatCompletionSchema),
        CompletionCreate: schema(completionSchema),
        File: { type: 'object', properties: { id: { type: 'string' }, object: { const: 'file' }, bytes: { type: 'integer' }, created_at: { type: 'integer' }, filename: { type: 'string' }, purpose: { type: 'string' }, status: { enum: ['uploaded', 'processed', 'error'] }, status_details: { type: ['string', 'null'] } } },
        FineTuningJob: { type: 'object', properties: { id: { type: 'string' }, object: { const: 'fine_tuning.job' }, status: { enum: ['validating_files', 'queued', 'running', 'succeeded', 'failed', 'cancelled', 'paused'] }, model: { type: 'string' }, fine_tuned_model: { type: ['string', 'null'] }, result_files: { type: 'array', items: { type: 'string' } }, trained_tokens: { type: ['integer', 'null'] } } },
        Event: { type: 'object', properties: { id: { type: 'string' }, object: { const: 'fine_tuning.job.event' }, level: { enum: ['info', 'warn', 'error'] }, message: { type: 'string' }, type: { enum: ['message', 'metrics'] }, data: {} } },
        Checkpoint: { type: 'object', properties: { id: { type: 'string' }, object: { const: 'fine_tuning.job.checkpoint' }, step_number: { type: 'integer' }, metrics: { type: 'object' }, fine_tuned_model_checkpoint: { type: 'string' } } },
      },
    },
    paths: {
      '/files': {
        post: { summary: 'upload a file (multipart: file, purpose); JSONL for fine-tuning is validated in the background', requestBody: { content: { 'multipart/form-data': { schema: { type: 'object', properties: { file: { type: 'string', format: 'binary' }, purpose: { type: 'string' } }, required: ['file', 'purpose'] } } } }, responses: ok('the file', ref('File')) },
        get: { summary: 'list files, newest first', parameters: [...paging, { name: 'purpose', in: 'query', schema: { type: 'string' } }], responses: ok('a page', listOf('File')) },
      },
      '/files/{file_id}': { parameters: [fileId], get: { responses: ok('the file', ref('File')) }, delete: { responses: ok('deleted') } },
      '/files/{file_id}/content': { parameters: [fileId], get: { responses: { 200: { description: 'the bytes', content: { 'application/octet-stream': {} } } } } },
      '/fine_tuning/jobs': {
        post: { summary: "create a job (OpenAI's fields plus the tuneforge run-config extension)", requestBody: json(ref('JobCreate')), responses: ok('the job', ref('FineTuningJob')) },
        get: { summary: 'list jobs, newest first', parameters: [...paging, { name: 'metadata', in: 'query', style: 'deepObject', schema: { type: 'object' } }], responses: ok('a page', listOf('FineTuningJob')) },
      },
      '/fine_tuning/jobs/{fine_tuning_job_id}': { parameters: [jobId], get: { responses: ok('the job', ref('FineTuningJob')) } },
      '/fine_tuning/jobs/{fine_tuning_job_id}/cancel': { parameters: [jobId], post: { responses: ok('the job', ref('FineTuningJob')) } },
      '/fine_tuning/jobs/{fine_tuning_job_id}/pause': { parameters: [jobId], post: { responses: ok('the job', ref('FineTuningJob')) } },
      '/fine_tuning/jobs/{fine_tuning_job_id}/resume': { parameters: [jobId], post: { responses: ok('the job', ref('FineTuningJob')) } },
      '/fine_tuning/jobs/{fine_tuning_job_id}/events': { parameters: [jobId], get: { summary: 'events, newest first; with stream=true, server-sent events (Last-Event-ID replays)', parameters: [...paging, { name: 'stream', in: 'query', schema: { type: 'boolean' } }], responses: ok('a page', listOf('Event')) } },
      '/fine_tuning/jobs/{fine_tuning_job_id}/checkpoints': { parameters: [jobId], get: { parameters: paging, responses: ok('a page', listOf('Checkpoint')) } },
      '/plans': { post: { summary: "a job's memory plan before it is queued (same body as job creation)", requestBody: json(ref('JobCreate')), responses: ok('the plan') } },
      '/models': { get: { responses: ok('base and fine-tuned models') } },
      '/chat/completions': { post: { requestBody: json(ref('ChatCompletionCreate')), responses: ok('a chat.completion, or server-sent chunks with stream') } },
      '/completions': { post: { requestBody: json(ref('CompletionCreate')), responses: ok('a text_completion, or server-sent chunks with stream') } },
    },
  };
}

export function openapiRoutes(_svc: Service): Hono {
  const app = new Hono();
  const doc = openapiDocument();
  app.get('/openapi.json', (c) => c.json(doc));
  return app;
}
