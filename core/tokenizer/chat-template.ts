/** Chat templates: choosing one (named templates, defaults) and rendering it with @huggingface/jinja. */
import { Template } from '@huggingface/jinja';

/** One chat turn. */
export interface ChatMessage {
  readonly role: string;
  readonly content: string;
}

/**
 * Used when the model defines no chat template: ChatML (`<|im_start|>role\ncontent<|im_end|>\n` per message,
 * `<|im_start|>assistant\n` as generation prompt). The markers are plain text unless the vocab has them as
 * tokens; for a base model being fine-tuned into a chat model this is a reasonable, widely used format.
 */
export const DEFAULT_CHAT_TEMPLATE =
  "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}" +
  "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

/**
 * The `chat_template` of tokenizer_config.json: a template string, or a list of `{name, template}`
 * (then `default` is the one used unless another is named). Returned as name → template.
 */
export function parseChatTemplates(value: unknown): Map<string, string> {
  const named = new Map<string, string>();
  if (typeof value === 'string') named.set('default', value);
  else if (Array.isArray(value)) {
    for (const item of value) {
      const { name, template } = (item ?? {}) as { name?: unknown; template?: unknown };
      if (typeof name !== 'string' || typeof template !== 'string') {
        throw new Error('chat_template list entries must be {"name": string, "template": string}');
      }
      named.set(name, template);
    }
  } else if (value !== undefined && value !== null) {
    throw new Error('chat_template must be a string or a list of {name, template}');
  }
  return named;
}

/**
 * Picks the template source: `requested` is the name of one of the model's templates or else a template string
 * itself (as transformers' `chat_template` argument); without it the model's `default` template, else the
 * built-in {@link DEFAULT_CHAT_TEMPLATE}.
 */
export function selectChatTemplate(named: ReadonlyMap<string, string>, requested?: string): string {
  if (requested !== undefined) return named.get(requested) ?? requested;
  if (named.size === 0) return DEFAULT_CHAT_TEMPLATE;
  const dflt = named.get('default');
  if (dflt === undefined) {
    throw new Error(
      `this tokenizer has several chat templates (${[...named.keys()].join(', ')}) and none named "default"; ` +
        'pass the name of one as the template option',
    );
  }
  return dflt;
}

const compiled = new Map<string, Template>();

/** Renders a template (compiled once per source string) with `messages`, `add_generation_prompt` and `extra`. */
export function renderChatTemplate(
  source: string,
  messages: readonly ChatMessage[],
  addGenerationPrompt: boolean,
  extra: Readonly<Record<string, unknown>>,
): string {
  let t = compiled.get(source);
  if (t === undefined) {
    t = new Template(source);
    compiled.set(source, t);
  }
  return t.render({ ...extra, messages: messages.map((m) => ({ ...m })), add_generation_prompt: addGenerationPrompt });
}
