/** One progress report while a file downloads. `total` is absent when the size is not known yet. */
export interface DownloadProgress {
  /** Path of the file inside the repo, e.g. `model.safetensors`. */
  readonly file: string;
  /** Bytes received so far. */
  readonly loaded: number;
  /** File size in bytes, when known. */
  readonly total?: number | undefined;
}

/** Options of {@link resolveModel}. Every option falls back to the environment variable Python uses. */
export interface ResolveModelOptions {
  /** Branch, tag or commit hash; default `main`. May also be given as `owner/name@revision`. */
  readonly revision?: string | undefined;
  /** Access token for private/gated repos; default `HF_TOKEN`. */
  readonly token?: string | undefined;
  /** Cache root; default `HF_HUB_CACHE`, else `HF_HOME/hub`, else `~/.cache/huggingface/hub`. */
  readonly cacheDir?: string | undefined;
  /** Hub base URL; default `HF_ENDPOINT`, else `https://huggingface.co`. */
  readonly endpoint?: string | undefined;
  /** Use only the cache, no network; default `HF_HUB_OFFLINE` (1/ON/YES/TRUE). */
  readonly offline?: boolean | undefined;
  /**
   * Exact repo files to fetch (instead of the default model set: config.json, tokenizer.json,
   * tokenizer_config.json, generation_config.json and special_tokens_map.json when present, and
   * model.safetensors or model.safetensors.index.json + its shards). All must exist.
   */
  readonly files?: readonly string[] | undefined;
  /** Called as bytes arrive, and once per downloaded file with `loaded === total`. Not called for cached files. */
  readonly onProgress?: ((e: DownloadProgress) => void) | undefined;
}
