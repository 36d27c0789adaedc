/**
 * A model target → a loaded model ready to decode: tokenizer, cached-KV generator (with the adapter's weights and
 * hooks baked in), how many positions prompt + completion may use, and the tokens that end a completion.
 */
import { adapterGenerator } from '../../cli/generate.ts';
import { createGenerator, type Generator, type GeneratorOptions } from '../../core/generate/generator.ts';
import { HubError } from '../../core/hub/index.ts';
import { loadModel } from '../../core/models/load.ts';
import { loadTokenizer, type Tokenizer } from '../../core/tokenizer/index.ts';
import { ApiError } from '../errors.ts';
import type { ModelTarget } from './catalog.ts';
import { GENERATION_LIMITS } from './limits.ts';
import { SerialQueue } from './serial-queue.ts';

export interface LoadedModel {
  readonly tokenizer: Tokenizer;
  readonly generator: Generator;
  /** Tokens prompt + completion may hold: the generator's length less the adapter's virtual positions. */
  readonly context: number;
  /** Token ids that end a completion (EOS; BOS, which would start another document). */
  readonly stopIds: readonly number[];
  /** Requests to this generator, one at a time. */
  readonly queue: SerialQueue;
}

/**
 * Hub failures that a retry will not fix: "no such model" (404) rather than "try again later" (503, which the
 * official client retries). An offline cache that lacks the model stays without it.
 */
const MISSING = new Set(['repo-not-found', 'revision-not-found', 'entry-not-found', 'invalid-repo', 'unauthorized', 'forbidden', 'invalid-source', 'local-invalid', 'not-cached']);

export async function loadTarget(target: ModelTarget, log: (line: string) => void): Promise<LoadedModel> {
  const started = performance.now();
  let model: Awaited<ReturnType<typeof loadModel>>;
  try {
    model = await loadModel(target.source);
  } catch (e) {
    if (e instanceof HubError) {
      if (MISSING.has(e.code)) throw new ApiError(404, `model '${target.id}': ${e.message}`, 'model', 'model_not_found');
      throw new ApiError(503, `model '${target.id}' cannot be fetched now: ${e.message}`, 'model', 'model_unavailable');
    }
    throw e;
  }
  const { dir, config, weights } = model;
  const tokenizer = await loadTokenizer(dir);
  const parts: Pick<GeneratorOptions, 'weights' | 'hooks'> = target.adapter ? await adapterGenerator(target.adapter, config, weights) : { weights };
  const maxLen = Math.min(config.maxPositions, GENERATION_LIMITS.contextTokens);
  const generator = await createGenerator({ config, ...parts, maxLen });
  const stopIds = [...new Set([...config.eosTokenIds, ...[tokenizer.eosId, tokenizer.bosId].filter((id): id is number => id !== null)])];
  log(`generation: loaded ${target.id} in ${Math.round(performance.now() - started)} ms`);
  // Prefix slots and soft prompts take room in the cache: the prompt gets what is left.
  return { tokenizer, generator, context: maxLen - generator.lead, stopIds, queue: new SerialQueue(GENERATION_LIMITS.queueDepth) };
}
