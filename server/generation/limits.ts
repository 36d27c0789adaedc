/**
 * The generation limits of this server. Fixed here rather than in the server config for now (see the report): they
 * bound the cost of one request, and the context bounds the generator's key/value cache, which every decoding step
 * copies in and out of the session, so a larger one makes every token slower.
 */
export const GENERATION_LIMITS = {
  /** Most tokens one completion may ask for (`max_tokens` / `max_completion_tokens`). */
  maxCompletionTokens: 512,
  /** Longest prompt + completion a generator holds; a model with a shorter context uses its own. */
  contextTokens: 1024,
  /** Generators kept loaded (least recently used ones are released first). */
  loadedModels: 2,
  /** Requests that may wait for one model's generator; beyond that the server answers 429 (the client retries). */
  queueDepth: 16,
  /** OpenAI's default `max_tokens` of the legacy completions endpoint. */
  defaultCompletionTokens: 16,
} as const;
