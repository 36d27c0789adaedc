/** Model resolution from local folders or the Hugging Face Hub, with the cache layout shared with Python. */
export { resolveModel } from './resolve-model.ts';
export type { DownloadProgress, ResolveModelOptions } from './types.ts';
export { HubError } from './errors.ts';
export type { HubErrorCode } from './errors.ts';
export { parseSource, resolveCacheDir, resolveEndpoint, resolveOffline, resolveToken, DEFAULT_REVISION } from './settings.ts';
export type { ModelSource } from './settings.ts';
export { isCommitHash, repoCacheFolder, snapshotFolder, readRef } from './cache-layout.ts';
export { REQUIRED_FILES, OPTIONAL_FILES, SAFETENSORS_FILE, SAFETENSORS_INDEX } from './model-files.ts';
