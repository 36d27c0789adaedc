import { HubApiError } from '@huggingface/hub';

/** What went wrong when resolving a model; lets callers branch without parsing messages. */
export type HubErrorCode =
  | 'invalid-source' // neither an existing local folder nor an `owner/name` repo id
  | 'local-invalid' // a local folder without config.json
  | 'repo-not-found' // 404 RepoNotFound
  | 'revision-not-found' // 404 RevisionNotFound
  | 'entry-not-found' // a requested file is not in the repo
  | 'unauthorized' // 401: private/gated repo without (valid) token
  | 'forbidden' // 403: gated repo whose conditions the token's user has not accepted, or no read scope
  | 'network' // could not reach the endpoint
  | 'not-cached' // offline and the cache does not hold the revision / files
  | 'http' // any other HTTP failure
  | 'invalid-repo'; // the repo has no usable weights / malformed index

/** An error from model resolution; `message` is meant for users and says what to do. */
export class HubError extends Error {
  constructor(
    readonly code: HubErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'HubError';
  }
}

/** Facts about the request that failed, recorded by the fetch wrapper (the library drops the headers). */
export interface FailedResponse {
  readonly status: number;
  readonly errorCode: string | null;
  readonly url: string;
}

/** Context needed to write a useful message. */
export interface ErrorContext {
  readonly repo: string;
  readonly revision: string;
  readonly endpoint: string;
  readonly cacheDir: string;
  readonly file?: string | undefined;
  readonly lastFailure?: FailedResponse | undefined;
}

const OFFLINE_HINT = 'If you have a cached copy, set HF_HUB_OFFLINE=1 (or pass offline: true) to use it without the network.';

/** Builds the error for a fetch() that rejected (connection refused, DNS, TLS, reset...). */
export function networkError(url: string, cause: unknown): HubError {
  const why = (cause instanceof Error ? cause.message : String(cause)).replace(/[.\s]+$/, '');
  const where = url.split('?')[0];
  return new HubError('network', `Could not reach the Hugging Face Hub at ${where}: ${why}. ${OFFLINE_HINT}`, { cause });
}

/** Maps anything thrown while talking to the Hub to a HubError with an actionable message. */
export function toHubError(err: unknown, ctx: ErrorContext): HubError {
  if (err instanceof HubError) return err;
  const what = `"${ctx.repo}" (revision "${ctx.revision}")`;
  if (err instanceof HubApiError) {
    const code = ctx.lastFailure?.status === err.statusCode ? ctx.lastFailure.errorCode : null;
    const detail = err.message ? ` Server said: ${err.message}` : '';
    switch (err.statusCode) {
      case 401:
        return new HubError(
          'unauthorized',
          `Access to ${what} on ${ctx.endpoint} was refused (401 Unauthorized): the repo is private or gated, ` +
            `or does not exist, or the token is invalid. Set HF_TOKEN (or pass token) to a Hugging Face access ` +
            `token with read access to it.${detail}`,
          { cause: err },
        );
      case 403:
        return new HubError(
          'forbidden',
          `Access to ${what} on ${ctx.endpoint} is forbidden (403): the repo is gated and your account has not been ` +
            `granted access, or the token lacks read permission. Accept the model's conditions on its Hub page and ` +
            `set HF_TOKEN to a token of that account.${detail}`,
          { cause: err },
        );
      case 404:
        if (code === 'RevisionNotFound') {
          return new HubError('revision-not-found', `Revision "${ctx.revision}" not found in repo "${ctx.repo}" on ${ctx.endpoint}.${detail}`, { cause: err });
        }
        if (code === 'EntryNotFound' && ctx.file !== undefined) {
          return new HubError('entry-not-found', `File "${ctx.file}" not found in ${what} on ${ctx.endpoint}.${detail}`, { cause: err });
        }
        return new HubError(
          'repo-not-found',
          `Repository "${ctx.repo}" not found on ${ctx.endpoint} (404). Check the repo id (owner/name); if it is ` +
            `private, set HF_TOKEN.${detail}`,
          { cause: err },
        );
      default:
        return new HubError('http', `Request for ${what}${ctx.file ? `, file "${ctx.file}"` : ''} failed with HTTP ${err.statusCode}.${detail}`, { cause: err });
    }
  }
  const why = (err instanceof Error ? err.message : String(err)).replace(/[.\s]+$/, '');
  return new HubError(
    'network',
    `Downloading ${what}${ctx.file ? `, file "${ctx.file}"` : ''} from ${ctx.endpoint} failed: ${why}. ${OFFLINE_HINT}`,
    { cause: err },
  );
}
