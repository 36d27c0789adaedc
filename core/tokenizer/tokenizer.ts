import { Tokenizer as HfTokenizer } from '@huggingface/tokenizers';
import { parseChatTemplates, renderChatTemplate, selectChatTemplate } from './chat-template.ts';
import type { ChatMessage } from './chat-template.ts';
import { readSpecialTokens, templateTokenContext } from './special-tokens.ts';
import type { SpecialTokens } from './special-tokens.ts';

/** Options of {@link Tokenizer.encode}. */
export interface EncodeOptions {
  /** Apply the tokenizer's post-processor (e.g. prepend BOS for Llama). Default true, as in transformers. */
  readonly addSpecialTokens?: boolean | undefined;
}

/** Options of {@link Tokenizer.decode}. */
export interface DecodeOptions {
  /** Drop special tokens (BOS/EOS/...) from the output. Default false. */
  readonly skipSpecialTokens?: boolean | undefined;
}

/** Options of {@link Tokenizer.applyChatTemplate}. */
export interface ChatTemplateOptions {
  /** Append the prompt that starts an assistant turn. Default false. */
  readonly addGenerationPrompt?: boolean | undefined;
  /** Name of one of the model's templates, or a Jinja template string. Default: the model's template. */
  readonly template?: string | undefined;
}

/** A Hugging Face tokenizer (tokenizer.json + tokenizer_config.json), with chat templating. */
export interface Tokenizer {
  /** Number of ids: highest id in the vocab (added tokens included) + 1. */
  readonly vocabSize: number;
  /** Id of the BOS token, or null when the tokenizer defines none. */
  readonly bosId: number | null;
  /** Id of the EOS token, or null when the tokenizer defines none. */
  readonly eosId: number | null;
  /** Id of the UNK token, or null. */
  readonly unkId: number | null;
  /**
   * Id to pad with: the pad token's if defined, else EOS's (the usual choice for causal LMs such as Llama,
   * whose configs have `pad_token: null`), else UNK's, else null. {@link padSource} tells which.
   */
  readonly padId: number | null;
  /** Where {@link padId} came from. */
  readonly padSource: 'pad' | 'eos' | 'unk' | null;
  /** The special-token strings, as configured. */
  readonly specialTokens: SpecialTokens;
  /** Ids of all tokens marked special in tokenizer.json (sorted). */
  readonly specialIds: readonly number[];
  /** True when the model ships a chat template; otherwise applyChatTemplate uses DEFAULT_CHAT_TEMPLATE. */
  readonly hasChatTemplate: boolean;
  /** Text → ids. */
  encode(text: string, opts?: EncodeOptions): number[];
  /** Ids → text. Throws RangeError on ids that are not integers in [0, vocabSize). */
  decode(ids: readonly number[], opts?: DecodeOptions): string;
  /** The token string of an id, or undefined. */
  idToToken(id: number): string | undefined;
  /** The id of a token string, or undefined. */
  tokenToId(token: string): number | undefined;
  /** Renders messages to a prompt string with the chat template (special tokens as text; encode it after). */
  applyChatTemplate(messages: readonly ChatMessage[], opts?: ChatTemplateOptions): string;
}

/** Parsed contents of the tokenizer files. */
export interface TokenizerFiles {
  /** tokenizer.json. */
  readonly tokenizer: Readonly<Record<string, unknown>>;
  /** tokenizer_config.json ({} when absent). */
  readonly config?: Readonly<Record<string, unknown>> | undefined;
  /** special_tokens_map.json, when present. */
  readonly specialTokensMap?: Readonly<Record<string, unknown>> | undefined;
  /** A separate chat template (chat_template.jinja); overrides config.chat_template. */
  readonly chatTemplate?: string | undefined;
}

class LoadedTokenizer implements Tokenizer {
  readonly vocabSize: number;
  readonly bosId: number | null;
  readonly eosId: number | null;
  readonly unkId: number | null;
  readonly padId: number | null;
  readonly padSource: 'pad' | 'eos' | 'unk' | null;
  readonly specialTokens: SpecialTokens;
  readonly specialIds: readonly number[];
  readonly hasChatTemplate: boolean;
  private readonly hf: HfTokenizer;
  private readonly templates: Map<string, string>;
  private readonly templateContext: Record<string, unknown>;

  constructor(files: TokenizerFiles) {
    const config = files.config ?? {};
    this.specialTokens = readSpecialTokens(config, files.specialTokensMap);
    // The library reads clean_up_tokenization_spaces, additional_special_tokens, ... from the config object.
    this.hf = new HfTokenizer(files.tokenizer, { ...config, additional_special_tokens: [...this.specialTokens.additional] });
    let maxId = -1;
    for (const id of this.hf.get_vocab(true).values()) maxId = Math.max(maxId, id);
    this.vocabSize = maxId + 1;
    const idOf = (t: string | null): number | null => (t === null ? null : (this.hf.token_to_id(t) ?? null));
    this.bosId = idOf(this.specialTokens.bos);
    this.eosId = idOf(this.specialTokens.eos);
    this.unkId = idOf(this.specialTokens.unk);
    const pad = idOf(this.specialTokens.pad);
    [this.padId, this.padSource] =
      pad !== null ? [pad, 'pad'] : this.eosId !== null ? [this.eosId, 'eos'] : this.unkId !== null ? [this.unkId, 'unk'] : [null, null];
    this.specialIds = [...this.hf.get_added_tokens_decoder().values()].filter((t) => t.special).map((t) => t.id).sort((a, b) => a - b);
    this.templates = parseChatTemplates(files.chatTemplate ?? config['chat_template']);
    this.hasChatTemplate = this.templates.size > 0;
    this.templateContext = templateTokenContext(this.specialTokens);
  }

  encode(text: string, opts: EncodeOptions = {}): number[] {
    return this.hf.encode(text, { add_special_tokens: opts.addSpecialTokens ?? true }).ids;
  }

  decode(ids: readonly number[], opts: DecodeOptions = {}): string {
    for (const id of ids) {
      if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) {
        throw new RangeError(`decode: token id ${id} is not an integer in [0, ${this.vocabSize})`);
      }
    }
    if (ids.length === 0) return ''; // the library throws on an empty list
    return this.hf.decode([...ids], { skip_special_tokens: opts.skipSpecialTokens ?? false });
  }

  idToToken(id: number): string | undefined {
    return this.hf.id_to_token(id);
  }

  tokenToId(token: string): number | undefined {
    return this.hf.token_to_id(token);
  }

  applyChatTemplate(messages: readonly ChatMessage[], opts: ChatTemplateOptions = {}): string {
    const source = selectChatTemplate(this.templates, opts.template);
    return renderChatTemplate(source, messages, opts.addGenerationPrompt ?? false, this.templateContext);
  }
}

/** Builds a tokenizer from already-parsed files (see {@link loadTokenizer} for a folder). */
export function createTokenizer(files: TokenizerFiles): Tokenizer {
  return new LoadedTokenizer(files);
}
