/**
 * One completion on a loaded model: decodes after the prompt, hands each settled piece of text to `onText` as the
 * token that made it is generated, and ends at a stop token, a stop sequence, `maxTokens`, the end of the context,
 * or when `signal` aborts (the client went away). Call it inside the model's queue.
 *
 * ```ts
 * const r = await complete(model, { promptIds, maxTokens: 64, temperature: 0, topP: 1, seed: 0, stops: [] }, (t) => write(t));
 * r.finishReason; // 'stop' | 'length'
 * ```
 */
import type { LoadedModel } from './load.ts';
import { TextStream } from './text-stream.ts';

export interface CompletionJob {
  promptIds: readonly number[];
  maxTokens: number;
  temperature: number;
  topP: number;
  seed: number;
  /** Stop sequences: the text ends before the first one. */
  stops: readonly string[];
  /** Token ids that end the completion besides the model's own (EOS, BOS). */
  stopIds?: readonly number[];
  signal?: AbortSignal;
}

export interface CompletionResult {
  text: string;
  finishReason: 'stop' | 'length';
  /** Tokens generated (those that made the text, the one that completed a stop sequence included). */
  completionTokens: number;
}

/** Thrown from the token callback to end decoding early: the generator has no other way to be stopped. */
class EndDecoding extends Error {}

export async function complete(model: LoadedModel, job: CompletionJob, onText: (text: string) => void = () => {}): Promise<CompletionResult> {
  const stream = new TextStream(model.tokenizer, job.promptIds, job.stops);
  let generated = 0;
  let ended = false;
  const options = {
    maxNewTokens: job.maxTokens, temperature: job.temperature, topP: job.topP, seed: job.seed,
    stopTokens: [...model.stopIds, ...(job.stopIds ?? [])],
  };
  if (!job.signal?.aborted) {
    try {
      await model.generator.generate(job.promptIds, options, (id) => {
        generated++;
        const { delta, stopped } = stream.push(id);
        if (delta) onText(delta);
        if (stopped || job.signal?.aborted) throw new EndDecoding();
      });
    } catch (e) {
      if (!(e instanceof EndDecoding)) throw e;
      ended = true;
    }
  }
  const rest = stream.finish();
  if (rest) onText(rest);
  // Without a stop, decoding ended because the model chose a stop token, or ran out of tokens or context.
  const outOfRoom = generated >= job.maxTokens || job.promptIds.length + generated >= model.context;
  return { text: stream.completion, finishReason: stream.stopped || (!ended && !outOfRoom) ? 'stop' : 'length', completionTokens: generated };
}
