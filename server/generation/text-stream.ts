/**
 * Generated tokens → text deltas as they come, with stop sequences. Each step decodes the whole continuation (after
 * a few prompt tokens, so a SentencePiece tokenizer keeps the leading space it drops at the start of a decode) and
 * sends what is new, holding back two kinds of tail until later tokens settle it:
 * - an unfinished character (byte-fallback tokens decode to U+FFFD until the character's last byte arrives);
 * - text that may be the start of a stop sequence, which must never reach the client.
 *
 * ```ts
 * const s = new TextStream(tok, promptIds, ['\n\n']);
 * const { delta, stopped } = s.push(id); // per token
 * const rest = s.finish();                // at the end
 * ```
 */
import type { Tokenizer } from '../../core/tokenizer/index.ts';

/** Prompt tokens decoded before the continuation: enough for the tokenizer to see mid-text context. */
const CONTEXT_TOKENS = 8;

export class TextStream {
  private readonly context: number[];
  private readonly contextText: string;
  private readonly ids: number[] = [];
  private text = '';
  private sent = 0;
  private stoppedAt: number | undefined;

  constructor(
    private readonly tok: Tokenizer,
    prompt: readonly number[],
    private readonly stops: readonly string[],
  ) {
    this.context = prompt.slice(-CONTEXT_TOKENS);
    this.contextText = this.decode(this.context);
  }

  /** True once a stop sequence appeared: generation should end. */
  get stopped(): boolean {
    return this.stoppedAt !== undefined;
  }

  /** The completion's text so far (cut before the stop sequence once one appeared). */
  get completion(): string {
    return this.stoppedAt === undefined ? this.text : this.text.slice(0, this.stoppedAt);
  }

  /** Adds a generated token; returns the text that may be sent now. */
  push(id: number): { delta: string; stopped: boolean } {
    if (this.stopped) return { delta: '', stopped: true };
    this.ids.push(id);
    const whole = this.decode([...this.context, ...this.ids]);
    this.text = whole.startsWith(this.contextText) ? whole.slice(this.contextText.length) : this.decode(this.ids);
    const at = this.firstStop();
    if (at !== undefined) {
      this.stoppedAt = at;
      return { delta: this.take(at), stopped: true };
    }
    return { delta: this.take(this.text.length - this.heldBack()), stopped: false };
  }

  /** The rest of the text once generation ended (an unfinished character is sent as it decodes). */
  finish(): string {
    return this.take(this.completion.length);
  }

  private decode(ids: readonly number[]): string {
    return this.tok.decode(ids, { skipSpecialTokens: true });
  }

  /** Text from what was sent up to `end` (never backwards: what a client received cannot be taken back). */
  private take(end: number): string {
    if (end <= this.sent) return '';
    const delta = this.text.slice(this.sent, end);
    this.sent = end;
    return delta;
  }

  private firstStop(): number | undefined {
    let first: number | undefined;
    for (const s of this.stops) {
      // A stop sequence ends in the new text, so it starts after what was sent minus its own length.
      const at = this.text.indexOf(s, Math.max(0, this.sent - s.length));
      if (at >= 0 && (first === undefined || at < first)) first = at;
    }
    return first;
  }

  /** Characters at the end that must wait: an unfinished character, or a possible start of a stop sequence. */
  private heldBack(): number {
    let held = 0;
    while (held < this.text.length && this.text[this.text.length - 1 - held] === '\uFFFD') held++;
    for (const s of this.stops) {
      for (let n = Math.min(s.length - 1, this.text.length); n > held; n--) {
        if (this.text.endsWith(s.slice(0, n))) {
          held = n;
          break;
        }
      }
    }
    return held;
  }
}
