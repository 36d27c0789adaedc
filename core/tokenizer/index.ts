/** Hugging Face tokenizers (tokenizer.json) with special-token handling and Jinja chat templates. */
export { loadTokenizer } from './load.ts';
export { createTokenizer } from './tokenizer.ts';
export type { Tokenizer, TokenizerFiles, EncodeOptions, DecodeOptions, ChatTemplateOptions } from './tokenizer.ts';
export { DEFAULT_CHAT_TEMPLATE } from './chat-template.ts';
export type { ChatMessage } from './chat-template.ts';
export type { SpecialTokens } from './special-tokens.ts';
