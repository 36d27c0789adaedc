/** OpenAI-style ids: `file-…`, `ftjob-…`, `ftevent-…`, `ftckpt_…`, 24 random base-62 characters each. */
const ALPHABET = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

function random(n = 24): string {
  const bytes = crypto.getRandomValues(new Uint8Array(n));
  let out = '';
  for (const b of bytes) out += ALPHABET[b % 62]; // 256 % 62 leaves a bias of under 2%: fine for ids, not for keys
  return out;
}

export const newFileId = (): string => `file-${random()}`;
export const newJobId = (): string => `ftjob-${random()}`;
export const newEventId = (): string => `ftevent-${random()}`;
export const newCheckpointId = (): string => `ftckpt_${random()}`;
export const nowSeconds = (): number => Math.floor(Date.now() / 1000);

/** Ids that may be looked up: the prefix and the alphabet, nothing a path could be built from. */
export const ID_PATTERN = /^(file-|ftjob-|ftevent-|ftckpt_)[0-9A-Za-z]{1,64}$/;
