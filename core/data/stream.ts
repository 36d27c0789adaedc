/**
 * An endless, resumable stream of batches. Each epoch's plan is a pure function of (seed, epoch), and each random
 * draw of (seed, step), so a position saved with {@link BatchStream.state} and given back to
 * {@link BatchStream.restore} continues with exactly the batches the original stream would have produced.
 */
import { collate, epochSeed, planEpoch } from './batch.ts';
import type { Batch } from './batch.ts';
import type { Example } from './example.ts';
import { StreamOptionsSchema, parseOptions } from './options.ts';
import type { ResolvedStreamOptions, StreamOptions } from './options.ts';
import { mixSeed, mulberry32, randomInt } from './rng.ts';

/** Where a stream is: `index` is the next batch of `epoch`; `step` counts all batches produced. */
export interface StreamPosition {
  readonly epoch: number;
  readonly index: number;
  readonly step: number;
}

/** A JSON-serialisable snapshot of a stream, for checkpoints. */
export interface BatchStreamState extends StreamPosition {
  readonly version: 1;
  /** Digest of the examples' lengths and of the options that shape batches; restore refuses a mismatch. */
  readonly fingerprint: string;
}

/** Salt of the random-draw seeds, so they differ from the epoch seeds. */
const DRAW_SALT = 0x6472617;

function fingerprint(examples: readonly Example[], o: ResolvedStreamOptions): string {
  let h = mixSeed(examples.length);
  for (const e of examples) h = mixSeed(h, e.inputIds.length, e.inputIds[0] ?? -1, e.inputIds[e.inputIds.length - 1] ?? -1);
  const shape = [o.batchSize, o.seed, o.shuffle, o.bucketByLength, o.bucketWindow, o.dropLast, o.drawRandom].join(',');
  return `${examples.length}:${h.toString(16)}:${shape}`;
}

/**
 * Batches epoch after epoch (shuffled per epoch, or drawn at random with replacement with `drawRandom`).
 *
 * ```ts
 * const stream = new BatchStream(examples, { batchSize: 16, padId: tok.padId!, seed: 1, bucketByLength: true });
 * const batch = stream.next();
 * const saved = stream.state();             // store with the checkpoint
 * const resumed = BatchStream.restore(examples, sameOptions, saved);
 * ```
 */
export class BatchStream implements Iterable<Batch> {
  private readonly options: ResolvedStreamOptions;
  private readonly lengths: number[];
  private readonly print: string;
  private epoch = 0;
  private index = 0;
  private step = 0;
  private plan: number[][] | undefined;

  constructor(
    private readonly examples: readonly Example[],
    options: StreamOptions,
    state?: BatchStreamState,
  ) {
    this.options = parseOptions(StreamOptionsSchema, options, 'BatchStream');
    if (examples.length === 0) throw new Error('BatchStream: no examples');
    this.lengths = examples.map((e) => e.inputIds.length);
    this.print = fingerprint(examples, this.options);
    if (this.batchesPerEpoch === 0) throw new Error('BatchStream: dropLast leaves no batch (fewer examples than batchSize)');
    if (state !== undefined) {
      if (state.version !== 1) throw new Error(`BatchStream: unknown state version ${String(state.version)}`);
      if (state.fingerprint !== this.print) {
        throw new Error(
          `BatchStream: the saved state belongs to other examples or options (${state.fingerprint} vs ${this.print})`,
        );
      }
      this.epoch = state.epoch;
      this.index = state.index;
      this.step = state.step;
    }
  }

  /** A stream continuing exactly where `state` was taken (same examples and options required). */
  static restore(examples: readonly Example[], options: StreamOptions, state: BatchStreamState): BatchStream {
    return new BatchStream(examples, options, state);
  }

  /** Batches in one epoch. */
  get batchesPerEpoch(): number {
    const { batchSize, dropLast, drawRandom } = this.options;
    const n = this.examples.length;
    if (drawRandom) return Math.max(1, Math.floor(n / batchSize)); // an "epoch" of draws: about n examples
    return dropLast ? Math.floor(n / batchSize) : Math.ceil(n / batchSize);
  }

  /** The position of the next batch. */
  get position(): StreamPosition {
    return { epoch: this.epoch, index: this.index, step: this.step };
  }

  /** A snapshot to resume from. */
  state(): BatchStreamState {
    return { version: 1, ...this.position, fingerprint: this.print };
  }

  /** The next batch. */
  next(): Batch {
    const o = this.options;
    let indices: number[];
    if (o.drawRandom) {
      const rand = mulberry32(mixSeed(o.seed, DRAW_SALT, this.step));
      indices = Array.from({ length: o.batchSize }, () => randomInt(rand, this.examples.length));
    } else {
      this.plan ??= planEpoch(this.lengths, o, epochSeed(o.seed, this.epoch));
      indices = this.plan[this.index] as number[];
    }
    this.step++;
    this.index++;
    if (this.index >= this.batchesPerEpoch) {
      this.epoch++;
      this.index = 0;
      this.plan = undefined;
    }
    return collate(this.examples, indices, o);
  }

  /** The next `n` batches. */
  take(n: number): Batch[] {
    return Array.from({ length: n }, () => this.next());
  }

  /** Endless iteration (break out, or use {@link take}). */
  *[Symbol.iterator](): Iterator<Batch> {
    for (;;) yield this.next();
  }
}
