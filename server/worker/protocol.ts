/**
 * How the training child talks to the service. Child → parent: one JSON message per stdout line, after a tag, so
 * anything else a library prints there is ignored. Parent → child: command lines on stdin (`pause`); the end of
 * stdin means the service is gone, and the child pauses too (checkpoint, exit) rather than train on unwatched.
 */
import { z } from 'zod';

export const MESSAGE_TAG = '@tuneforge-worker ';
export const PAUSE_COMMAND = 'pause';

const metrics = z.record(z.string(), z.number());

export const workerMessageSchema = z.discriminatedUnion('type', [
  /** Model and data are loaded (or about to be); the child holds the run folder. */
  z.object({ type: z.literal('started'), pid: z.number() }),
  z.object({ type: z.literal('log'), line: z.string() }),
  z.object({ type: z.literal('metrics'), record: metrics }),
  /** `metrics`: the record of the step the checkpoint holds (empty when it was not written by this process). */
  z.object({ type: z.literal('checkpoint'), step: z.number(), dir: z.string(), metrics }),
  z.object({
    type: z.literal('result'),
    status: z.enum(['succeeded', 'paused']),
    step: z.number(),
    trainedTokens: z.number(),
    exported: z.array(z.string()),
    metrics,
  }),
  z.object({ type: z.literal('error'), code: z.string(), message: z.string() }),
]);

export type WorkerMessage = z.infer<typeof workerMessageSchema>;

export function encodeMessage(message: WorkerMessage): string {
  return `${MESSAGE_TAG}${JSON.stringify(message)}\n`;
}

/** The message on a stdout line, or undefined for any other output (untagged, cut short, or not a message). */
export function parseMessage(line: string): WorkerMessage | undefined {
  const at = line.indexOf(MESSAGE_TAG);
  if (at < 0) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(line.slice(at + MESSAGE_TAG.length));
  } catch {
    return undefined;
  }
  const r = workerMessageSchema.safeParse(value);
  return r.success ? r.data : undefined;
}

/** Splits a byte stream into lines as they complete (a line may arrive in several chunks). */
export async function forEachLine(stream: ReadableStream<Uint8Array>, onLine: (line: string) => void): Promise<void> {
  const decoder = new TextDecoder();
  let pending = '';
  for await (const chunk of stream) {
    pending += decoder.decode(chunk, { stream: true });
    const lines = pending.split('\n');
    pending = lines.pop()!;
    for (const line of lines) onLine(line);
  }
  pending += decoder.decode();
  if (pending !== '') onLine(pending);
}
