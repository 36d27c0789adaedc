/**
 * `grads`: the gradient of the loss of one batch with respect to every trainable tensor, written to safetensors
 * under the tensors' own names, plus the loss as a scalar named `loss`. Without an adapter every model weight is
 * trainable. With `--adapter DIR` (any PEFT folder: LoRA, AdaLoRA, prefix, prompt, P-tuning, bottleneck) only the
 * adapter's tensors are, written under the adapter file's own key names; the loss is the plain cross-entropy (no
 * regulariser such as AdaLoRA's orthogonality term). `--lora DIR` is the older spelling for a LoRA folder, whose
 * gradients keep bare names (`model.layers.0...lora_A.weight`).
 */
import { compile, gradName, readAll, trace, valueAndGrad, writeSafetensors, type HostTensor, type PluginContext } from '../core/index.ts';
import { buildCausalLM, causalLMLoss } from '../core/models/llama.ts';
import { loadModel } from '../core/models/load.ts';
import { paramSpecs } from '../core/models/params.ts';
import { baseWeightsOf, PluginDriver } from '../core/plugin/index.ts';
import { peftKey } from '../plugins/peft/folder.ts';
import { readAdapter } from '../plugins/peft/read.ts';

export interface GradsOptions {
  model: string;
  batch: string;
  /** A PEFT adapter folder of any supported type. */
  adapter?: string;
  /** A PEFT LoRA folder (gradients under bare names). */
  lora?: string;
  out: string;
}

/** Reads a batch file: `input_ids` and `labels` [B, T], stored as any numeric dtype holding integers. */
export async function readBatch(path: string): Promise<{ input_ids: HostTensor; labels: HostTensor }> {
  const tensors = await readAll(path, { as: 'float64' });
  const get = (name: string): HostTensor => {
    const t = tensors.get(name);
    if (!t) throw new Error(`${path}: no tensor '${name}' (found: ${[...tensors.keys()].join(', ')})`);
    if (t.shape.length !== 2) throw new Error(`${path}: '${name}' has shape [${t.shape}], expected [batch, seq]`);
    const data = t.data as Float64Array;
    const ints = new BigInt64Array(data.length);
    for (let i = 0; i < data.length; i++) {
      if (!Number.isInteger(data[i]!)) throw new Error(`${path}: '${name}'[${i}] = ${data[i]} is not an integer`);
      ints[i] = BigInt(data[i]!);
    }
    return { dtype: 'int64', shape: t.shape, data: ints };
  };
  const input_ids = get('input_ids'), labels = get('labels');
  if (input_ids.shape.join() !== labels.shape.join()) throw new Error(`${path}: input_ids [${input_ids.shape}] and labels [${labels.shape}] differ in shape`);
  return { input_ids, labels };
}

export async function computeGrads(opts: GradsOptions): Promise<Map<string, HostTensor>> {
  const dir = opts.adapter ?? opts.lora;
  const adapter = dir ? await readAdapter(dir) : undefined;
  const { config, weights } = await loadModel(opts.model);
  const batch = await readBatch(opts.batch);
  const [B, T] = batch.input_ids.shape as [number, number];

  // The adapter's plugin builds its part of the graph; the loss is the bare cross-entropy (no model:loss terms).
  const driver = new PluginDriver(adapter ? [adapter.plugin] : []);
  const ctx: PluginContext = {
    model: { config, specs: paramSpecs(config) }, run: { dir: '', seed: 0, totalSteps: 1 }, phase: 'eval',
    log: (m) => console.error(m), plugin: (name) => driver.api(name),
  };
  await driver.validate(ctx);
  const graph = trace((g) => ({ loss: causalLMLoss(g, buildCausalLM(g, config, { batch: B, seq: T, hooks: driver.modelHooks(ctx) })) }));

  const values = new Map(weights);
  if (adapter) {
    const pending = graph.inputs.filter((i) => !weights.has(i.name) && !(i.name in batch)).map((i) => ({ name: i.name, shape: i.v.shape as number[] }));
    for (const { value } of await driver.collect('params:init', ctx, pending, baseWeightsOf(weights))) for (const [n, t] of value) values.set(n, t);
  }
  const trainable = adapter ? [...adapter.tensors.keys()] : [...weights.keys()];
  const exe = await compile(valueAndGrad(graph, { of: 'loss', wrt: trainable }), { resident: adapter ? weights : undefined });
  const feeds: Record<string, HostTensor> = { ...batch };
  for (const input of exe.inputs) if (!(input.name in feeds)) feeds[input.name] = values.get(input.name)!;
  const out = await exe.run(feeds);
  await exe.release();

  const result = new Map<string, HostTensor>([['loss', out.loss!]]);
  const key = opts.adapter ? peftKey : (n: string) => n;
  for (const n of trainable) result.set(key(n), out[gradName(n)]!);
  await writeSafetensors(opts.out, result);
  return result;
}
