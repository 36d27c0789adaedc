/** `generate`: decode text from a model (local folder or Hub id), optionally with a LoRA adapter on top. */
import { createGenerator } from '../core/generate/generator.ts';
import type { DecodingOptions } from '../core/generate/sampling.ts';
import { loadModel } from '../core/models/load.ts';
import { loadTokenizer } from '../core/tokenizer/index.ts';
import { adapterHooks, readPeftAdapter } from '../plugins/lora/adapter.ts';

export interface GenerateCommandOptions extends DecodingOptions {
  model: string;
  prompt: string;
  lora?: string;
  cache?: boolean;
  maxLen?: number;
  write?: (text: string) => void;
}

export async function runGenerate(opts: GenerateCommandOptions): Promise<string> {
  const { dir, config, weights } = await loadModel(opts.model);
  const tok = await loadTokenizer(dir);
  const adapter = opts.lora ? await readPeftAdapter(opts.lora) : undefined;
  const resident = new Map(weights);
  for (const [n, t] of adapter?.tensors ?? []) resident.set(n, t);
  const gen = await createGenerator({
    config, weights: resident, maxLen: opts.maxLen, cache: opts.cache,
    hooks: adapter ? (g) => adapterHooks(g, adapter.config) : undefined,
  });
  // A new BOS mid-generation starts another document, so it ends this one, like EOS.
  const stops = opts.stopTokens ?? [...new Set([...config.eosTokenIds, ...(tok.eosId !== null ? [tok.eosId] : []), ...(tok.bosId !== null ? [tok.bosId] : [])])];
  const prompt = tok.encode(opts.prompt, { addSpecialTokens: true });
  const write = opts.write ?? ((s: string) => process.stdout.write(s));
  let shown = '';
  const ids: number[] = [];
  write(opts.prompt);
  await gen.generate(prompt, { ...opts, stopTokens: stops }, (id) => {
    ids.push(id);
    // Decode the whole continuation each time so multi-byte characters and spaces come out right.
    const text = tok.decode([...prompt, ...ids], { skipSpecialTokens: true }).slice(tok.decode(prompt, { skipSpecialTokens: true }).length);
    write(text.slice(shown.length));
    shown = text;
  });
  write('\n');
  await gen.release();
  return shown;
}
