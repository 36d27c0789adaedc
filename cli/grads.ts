/**
 * `grads`: the gradient of the loss of one batch with respect to every trainable tensor, written to safetensors
 * under the tensors' own names, plus the loss as a scalar named `loss`. Without `--lora` every model weight is
 * trainable; with a PEFT LoRA adapter, only its matrices are (the base is frozen and baked into the session).
 */
import { compile, gradName, readAll, trace, valueAndGrad, writeSafetensors, type HostTensor } from '../core/index.ts';
import { buildCausalLM, causalLMLoss } from '../core/models/llama.ts';
import { loadModel } from '../core/models/load.ts';
import { adapterHooks, readPeftAdapter } from '../plugins/lora/adapter.ts';

export interface GradsOptions {
  model: string;
  batch: string;
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
  const { config, weights } = await loadModel(opts.model);
  const batch = await readBatch(opts.batch);
  const [B, T] = batch.input_ids.shape as [number, number];
  const adapter = opts.lora ? await readPeftAdapter(opts.lora) : undefined;

  const graph = trace((g) => {
    const hooks = adapter ? adapterHooks(g, adapter.config) : undefined;
    const m = buildCausalLM(g, config, { batch: B, seq: T, hooks });
    return { loss: causalLMLoss(g, m) };
  });

  const trainable = adapter ? [...adapter.tensors.keys()] : [...weights.keys()];
  const inputs = new Set(graph.inputs.map((i) => i.name));
  const unused = trainable.filter((n) => !inputs.has(n));
  if (unused.length) throw new Error(`adapter tensors that match no layer of the model: ${unused.slice(0, 5).join(', ')}${unused.length > 5 ? ', ...' : ''}`);
  const exe = await compile(valueAndGrad(graph, { of: 'loss', wrt: trainable }), { resident: adapter ? weights : undefined });
  const feeds: Record<string, HostTensor> = { ...batch };
  for (const n of trainable) feeds[n] = (adapter ? adapter.tensors : weights).get(n)!;
  const out = await exe.run(feeds);
  await exe.release();

  const result = new Map<string, HostTensor>([['loss', out.loss!]]);
  for (const n of trainable) result.set(n, out[gradName(n)]!);
  await writeSafetensors(opts.out, result);
  return result;
}
