/** Malformed records: where they are, why they were rejected, and when a dataset is refused because of them. */

/** Where a record came from. `line` is 1-based; `index` is the 0-based record number within the file. */
export interface RecordSource {
  readonly file: string;
  readonly line: number;
  readonly index: number;
}

/** A record that was rejected, with the reason. */
export interface BadRecord extends RecordSource {
  readonly reason: string;
}

/** How many problems an error message lists. */
export const PROBLEMS_LISTED = 10;

/** `file:line (record n): reason`. */
export function formatBadRecord(b: BadRecord): string {
  return `${b.file}:${b.line} (record ${b.index}): ${b.reason}`;
}

/** Thrown when too large a share of the records is malformed. */
export class DatasetError extends Error {
  constructor(
    message: string,
    /** All rejected records. */
    readonly problems: readonly BadRecord[],
    /** Number of records seen, good and bad. */
    readonly total: number,
  ) {
    super(message);
    this.name = 'DatasetError';
  }
}

/**
 * Throws a {@link DatasetError} listing the first problems when `problems.length / total > maxBadFraction`
 * (or when nothing usable is left); otherwise returns, and the problems become warnings.
 */
export function enforceBadFraction(problems: readonly BadRecord[], total: number, maxBadFraction: number, what: string): void {
  const bad = problems.length;
  if (total === 0) throw new DatasetError(`${what}: no records found`, problems, total);
  const share = bad / total;
  if (share <= maxBadFraction && bad < total) return;
  const listed = problems.slice(0, PROBLEMS_LISTED).map((p) => `  ${formatBadRecord(p)}`);
  const more = bad > PROBLEMS_LISTED ? `\n  ... and ${bad - PROBLEMS_LISTED} more` : '';
  const why = bad === total
    ? `all ${total} records are malformed`
    : `${bad} of ${total} records are malformed (${(share * 100).toFixed(2)}%, more than maxBadFraction ${(maxBadFraction * 100).toFixed(2)}%)`;
  throw new DatasetError(
    `${what}: ${why}:\n${listed.join('\n')}${more}`,
    problems,
    total,
  );
}
