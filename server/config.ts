/**
 * The service's settings: the command line's contract (`--port`, `--home`, `--allow-model`, `--allow-plugin`,
 * `--offline`, keys from TUNEFORGE_API_KEYS) plus everything else in an optional JSON server config file.
 */
import { z } from 'zod';

export const serverConfigSchema = z
  .object({
    port: z.number().int().min(0).max(65535).default(8000).describe('TCP port (0 = any free port)'),
    host: z.string().default('127.0.0.1').describe('address to listen on; 0.0.0.0 exposes the service to the network'),
    home: z.string().describe('folder holding the store, uploads and job artifacts'),
    store: z.string().optional().describe('a postgres:// URL to share the queue with other servers; default: home/store.sqlite'),
    apiKeys: z.array(z.string().min(16, 'API keys must be at least 16 characters')).default([]).describe('accepted bearer tokens (also TUNEFORGE_API_KEYS, comma-separated, or apiKeysFile)'),
    apiKeysFile: z.string().optional().describe('a file with one API key per line'),
    allowModels: z.array(z.string()).default([]).describe('local model folders jobs may name (by folder name or full path)'),
    offline: z.boolean().default(false).describe('refuse Hugging Face Hub ids: only allowModels'),
    allowPlugins: z.array(z.string()).default([]).describe('plugin packages jobs may name beyond the built-ins'),
    concurrency: z.number().int().min(0).default(1).describe('jobs trained at once by this server (0: accept jobs, train none)'),
    maxAttempts: z.number().int().positive().default(3).describe('worker processes a job may use before it fails (crashes are retried)'),
    leaseMs: z.number().int().positive().default(30_000).describe('how long a running job stays claimed without a heartbeat before another server may take it'),
    pollMs: z.number().int().positive().default(500).describe('how often the worker loop looks for queued jobs'),
    limits: z
      .object({
        uploadBytes: z.number().int().positive().default(512 * 2 ** 20).describe('largest upload'),
        bodyBytes: z.number().int().positive().default(2 ** 20).describe('largest JSON request body'),
        listLimit: z.number().int().positive().default(100).describe('most items one list page returns'),
      })
      .strict()
      .prefault({}),
    memoryBudget: z.union([z.number().positive(), z.string()]).optional().describe("the worker's memory: jobs whose plan does not fit are refused at creation (number = MiB, or '8GB')"),
    webhooks: z
      .array(z.object({ url: z.url(), secret: z.string().min(16) }).strict())
      .default([])
      .describe('Standard Webhooks endpoints told of terminal job states (secret: whsec_... base64, as OpenAI issues)'),
  })
  .strict();

export type ServerConfigInput = z.input<typeof serverConfigSchema>;
export type ServerConfig = z.output<typeof serverConfigSchema>;
