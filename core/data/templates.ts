/**
 * Prompt templates of instruction records. The default is the Stanford Alpaca template (tatsu-lab/stanford_alpaca
 * `PROMPT_DICT`), with a newline after "### Response:" as in alpaca-lora and most later fine-tuning code; the
 * response follows the prompt directly.
 */

/** Alpaca prompt for records with an input. */
export const ALPACA_PROMPT =
  'Below is an instruction that describes a task, paired with an input that provides further context. ' +
  'Write a response that appropriately completes the request.\n\n' +
  '### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n';

/** Alpaca prompt for records without an input. */
export const ALPACA_PROMPT_NO_INPUT =
  'Below is an instruction that describes a task. ' +
  'Write a response that appropriately completes the request.\n\n' +
  '### Instruction:\n{instruction}\n\n### Response:\n';

/** Replaces every `{name}` in `template` (no other syntax; `$` and braces in values are kept literally). */
export function fillTemplate(template: string, values: Readonly<Record<string, string>>): string {
  let out = template;
  for (const [k, v] of Object.entries(values)) out = out.split(`{${k}}`).join(v);
  return out;
}

/**
 * The prompt text of an instruction: `template` is 'alpaca' or a custom string with `{instruction}` / `{prompt}`
 * and `{input}` placeholders; `noInputTemplate` is used when `input` is empty (for 'alpaca': the no-input variant).
 */
export function renderInstructionPrompt(
  template: string,
  noInputTemplate: string | undefined,
  instruction: string,
  input: string,
): string {
  const hasInput = input.trim() !== '';
  const t =
    template === 'alpaca'
      ? hasInput ? ALPACA_PROMPT : ALPACA_PROMPT_NO_INPUT
      : !hasInput && noInputTemplate !== undefined ? noInputTemplate : template;
  return fillTemplate(t, { instruction, prompt: instruction, input });
}
