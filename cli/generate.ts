/** `generate`: decode text from a model (local folder or Hub id), optionally with a PEFT adapter on top. */
import { createGenerator, type GeneratorOptions } from '../core/generate/generator.ts';
import type { DecodingOptions } from '../core/generate/sampling.ts';
import type { HostTensor } from '../core/ir/host.ts';
import type { ModelConfig } from '../core/models/config.ts';
import { loadModel } from '../core/models/load.ts';
import { paramSpecs } from '../core/models/params.ts';
import { baseWeightsOf, PluginDriver, type PluginContext } from '../core/plugin/index.ts';
import { trace } from '../core/ir/graph.ts';
import { buildCausalLM } from '../core/models/llama.ts';
import { loadTokenizer } from '../core/tokenizer/index.ts';
import { readAdapter } from '../plugins/peft/read.ts';

export interface GenerateCommandOptions extends DecodingOptions {
  model: string;
  prompt: string;
  /** A PEFT adapter folder of any supported type (`lora` is the older name for a LoRA folder). */
  adapter?: string;
  lora?: string;
  cache?: boolean;
  maxLen?: number;
  write?: (text: string) => void;
}

export async function runGenerate(opts: GenerateCommandOptions): Promise<string> {
  const { dir, config, weights } = await loadModel(opts.model);
  const tok = await loadTokenizer(dir);
  const adapterDir = opts.adapter ?? opts.lora;
  const withAdapter = adapterDir ? await adapterGenerator(adapterDir, config, weights) : { weights, hooks: undefined };
  const gen = await createGenerator({ config, ...withAdapter, maxLen: opts.maxLen, cache: opts.cache });
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

/**
 * The weights and model hooks that put a PEFT adapter on a model for generation: the adapter's plugin builds its part
 * of the graph (prefix slots, soft prompt, LoRA, ...) and the file's tensors are baked into the session.
 */
export async function adapterGenerator(dir: string, config: ModelConfig, weights: ReadonlyMap<string, HostTensor>): Promise<Pick<GeneratorOptions, 'weights' | 'hooks'>> {
  const adapter = await readAdapter(dir);
  const driver = new PluginDriver([adapter.plugin]);
  const ctx: PluginContext = {
    model: { config, specs: paramSpecs(config) }, run: { dir: '', seed: 0, totalSteps: 1 }, phase: 'generate',
    log: (m) => console.error(m), plugin: (name) => driver.api(name),
  };
  await driver.validate(ctx);
  // The inputs the adapter adds, found by tracing the decoding graph once; their values come from the file.
  const probe = trace((g) => ({ logits: buildCausalLM(g, config, { batch: 1, seq: 1, hooks: driver.modelHooks(ctx), cache: { maxLen: config.maxPositions } }).logits }));
  const pending = probe.inputs.filter((i) => !weights.has(i.name) && !['input_ids', 'position'].includes(i.name) && !i.name.startsWith('past.'));
  const resident = new Map(weights);
  for (const { value } of await driver.collect('params:init', ctx, pending.map((i) => ({ name: i.name, shape: i.v.shape as number[] })), baseWeightsOf(weights))) {
    for (const [n, t] of value) resident.set(n, t);
  }
  return { weights: resident, hooks: () => driver.modelHooks(ctx) };
}
