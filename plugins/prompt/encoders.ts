/**
 * The reparameterising encoders of Hugging Face PEFT's prompt-learning methods, as pieces of a graph being traced:
 *
 * - P-tuning, MLP (`PromptEncoder`, encoder_reparameterization_type "MLP"):
 *     E [nvt, d] → Linear(d, h) → ReLU → Linear(h, h) → ReLU → Linear(h, d)
 * - P-tuning, LSTM ("LSTM"): E [nvt, d] → bidirectional LSTM(d, h, L layers) → Linear(2h, 2h) → ReLU → Linear(2h, d)
 * - Prefix tuning with `prefix_projection` (`PrefixEncoder`):
 *     E [nvt, d] → Linear(d, h) → Tanh → Linear(h, layers · 2 · d)
 * - Prefix tuning without it: the table E [nvt, layers · 2 · d] itself.
 *
 * PEFT feeds the encoder `embedding(arange(nvt))`, i.e. the whole embedding table in order, and repeats the result
 * over the batch. Here `build` returns that [nvt, dOut] table once; the caller prepends (or reshapes) it per sequence.
 *
 * Parameter names are PEFT's model state-dict keys with the adapter name removed (`prompt_encoder.default.x` →
 * `prompt_encoder.x`), with PyTorch's shapes. Note that PEFT's saved adapter file holds none of them: it stores the
 * encoder's output as `prompt_embeddings` ([nvt, dOut], `get_prompt_embedding_to_save`), which `encoderGraph`
 * computes.
 */
import { hostTensor, nn, op, seededRandom, trace, type DType, type Graph, type GraphBuilder, type HostTensor, type Tensor } from '../../core/index.ts';
import { bidirectionalLstm, lstmParamShapes, type LstmCellWeights, type LstmLayerWeights } from './lstm.ts';

/** How a parameter starts, as PyTorch's default initialisers: N(0, 1) (nn.Embedding), U(−b, b), or zeros. */
export type EncoderInit = 'normal' | 'zeros' | { uniform: number };

export interface EncoderParam {
  name: string;
  shape: number[];
  init: EncoderInit;
}

/** Creates (or returns) the graph input holding a parameter; the caller decides dtype, naming and trainability. */
export type ParamInput = (name: string, shape: number[]) => Tensor;

export interface Encoder {
  /** Which PEFT encoder this is (for messages and configs). */
  kind: 'p-tuning-mlp' | 'p-tuning-lstm' | 'prefix-projection' | 'prefix-embedding' | 'table';
  virtualTokens: number;
  /** Width of each output row: token_dim for p-tuning, layers · 2 · token_dim for prefix tuning. */
  outDim: number;
  /** In PyTorch's registration order (the order of `named_parameters()`). */
  params: EncoderParam[];
  /** Adds the encoder to the graph of `g`; returns the virtual-token table [virtualTokens, outDim]. */
  build(g: GraphBuilder, input: ParamInput): Tensor;
}

/** The state-dict key PEFT saves prompt-learning adapters under: the encoder's output table. */
export const PROMPT_EMBEDDINGS_KEY = 'prompt_embeddings';

export const PROMPT_ENCODER = 'prompt_encoder';
export const PREFIX_ENCODER = 'prefix_encoder';

/** nn.Linear's defaults: Kaiming-uniform with a = sqrt(5) gives U(±1/sqrt(in)) for the weight, and the bias uses the same bound. */
function linearParams(prefix: string, inDim: number, outDim: number): EncoderParam[] {
  const bound = 1 / Math.sqrt(inDim);
  return [
    { name: `${prefix}.weight`, shape: [outDim, inDim], init: { uniform: bound } },
    { name: `${prefix}.bias`, shape: [outDim], init: { uniform: bound } },
  ];
}

function positive(what: string, n: number): number {
  if (!Number.isInteger(n) || n <= 0) throw new Error(`${what} must be a positive integer, got ${n}`);
  return n;
}

/** Fetches each declared parameter through `input`, checking that the caller returned a tensor of this graph and shape. */
function paramGetter(g: GraphBuilder, params: readonly EncoderParam[], input: ParamInput): (name: string) => Tensor {
  const byName = new Map(params.map((p) => [p.name, p]));
  return (name) => {
    const p = byName.get(name);
    if (!p) throw new Error(`encoder parameter '${name}' is not declared`);
    const t = input(p.name, [...p.shape]);
    if (t.builder !== g) throw new Error(`encoder parameter '${name}': the input callback returned a tensor of another graph`);
    if (t.rank !== p.shape.length || p.shape.some((d, i) => t.shape[i] !== d)) {
      throw new Error(`encoder parameter '${name}': expected shape [${p.shape.join(', ')}], got [${t.shape.join(', ')}]`);
    }
    return t;
  };
}

const relu = (x: Tensor): Tensor => op.maximum(x, 0);

/**
 * P-tuning's MLP encoder (PEFT `PromptEncoder` with encoder_reparameterization_type "MLP"). `hidden` is
 * encoder_hidden_size, which PEFT defaults to token_dim. `virtualTokens` is PEFT's total_virtual_tokens
 * (num_virtual_tokens · num_transformer_submodules, i.e. num_virtual_tokens for a decoder-only model).
 * PEFT always uses exactly three linear layers here (encoder_num_layers is ignored for MLP).
 */
export function mlpPromptEncoder(o: { virtualTokens: number; tokenDim: number; hidden?: number }): Encoder {
  const nvt = positive('virtualTokens', o.virtualTokens);
  const d = positive('tokenDim', o.tokenDim);
  const h = positive('hidden', o.hidden ?? d);
  const params: EncoderParam[] = [
    { name: `${PROMPT_ENCODER}.embedding.weight`, shape: [nvt, d], init: 'normal' },
    // nn.Sequential indices: 0 Linear, 1 ReLU, 2 Linear, 3 ReLU, 4 Linear.
    ...linearParams(`${PROMPT_ENCODER}.mlp_head.0`, d, h),
    ...linearParams(`${PROMPT_ENCODER}.mlp_head.2`, h, h),
    ...linearParams(`${PROMPT_ENCODER}.mlp_head.4`, h, d),
  ];
  return {
    kind: 'p-tuning-mlp',
    virtualTokens: nvt,
    outDim: d,
    params,
    build(g, input) {
      const p = paramGetter(g, params, input);
      const m = `${PROMPT_ENCODER}.mlp_head`;
      const table = p(`${PROMPT_ENCODER}.embedding.weight`); // [nvt, d]: embedding(arange(nvt)) is the table itself
      const h1 = relu(nn.linear(table, p(`${m}.0.weight`), p(`${m}.0.bias`))); // [nvt, h]
      const h2 = relu(nn.linear(h1, p(`${m}.2.weight`), p(`${m}.2.bias`))); // [nvt, h]
      return nn.linear(h2, p(`${m}.4.weight`), p(`${m}.4.bias`)); // [nvt, d]
    },
  };
}

/**
 * P-tuning's LSTM encoder (PEFT `PromptEncoder` with encoder_reparameterization_type "LSTM"): a bidirectional
 * `nn.LSTM(d, h, num_layers=layers, batch_first=True)` over the embedding table as one sequence of nvt steps, then
 * Linear(2h, 2h) → ReLU → Linear(2h, d). `layers` is encoder_num_layers (PEFT's default 2); `hidden` defaults to
 * token_dim as in PEFT. Only encoder_dropout = 0 (PEFT's default) is supported: the dropout PyTorch applies between
 * LSTM layers while training is not built.
 */
export function lstmPromptEncoder(o: { virtualTokens: number; tokenDim: number; hidden?: number; layers?: number; dropout?: number }): Encoder {
  const nvt = positive('virtualTokens', o.virtualTokens);
  const d = positive('tokenDim', o.tokenDim);
  const h = positive('hidden', o.hidden ?? d);
  const layers = positive('layers', o.layers ?? 2);
  if ((o.dropout ?? 0) !== 0) throw new Error(`LSTM prompt encoder: encoder_dropout ${o.dropout} is not supported (only 0, PEFT's default)`);
  const lstm = `${PROMPT_ENCODER}.lstm_head`;
  const m = `${PROMPT_ENCODER}.mlp_head`;
  // nn.LSTM initialises every weight and bias U(±1/sqrt(hidden)).
  const lstmBound = 1 / Math.sqrt(h);
  const params: EncoderParam[] = [
    { name: `${PROMPT_ENCODER}.embedding.weight`, shape: [nvt, d], init: 'normal' },
    ...lstmParamShapes(d, h, layers).map((s) => ({ name: `${lstm}.${s.name}`, shape: s.shape, init: { uniform: lstmBound } })),
    // nn.Sequential indices: 0 Linear, 1 ReLU, 2 Linear.
    ...linearParams(`${m}.0`, 2 * h, 2 * h),
    ...linearParams(`${m}.2`, 2 * h, d),
  ];
  return {
    kind: 'p-tuning-lstm',
    virtualTokens: nvt,
    outDim: d,
    params,
    build(g, input) {
      const p = paramGetter(g, params, input);
      const cell = (l: number, suffix: string): LstmCellWeights => ({
        weightIh: p(`${lstm}.weight_ih_l${l}${suffix}`), // [4h, in]
        weightHh: p(`${lstm}.weight_hh_l${l}${suffix}`), // [4h, h]
        biasIh: p(`${lstm}.bias_ih_l${l}${suffix}`), // [4h]
        biasHh: p(`${lstm}.bias_hh_l${l}${suffix}`), // [4h]
      });
      const weights: LstmLayerWeights[] = Array.from({ length: layers }, (_, l) => ({ forward: cell(l, ''), reverse: cell(l, '_reverse') }));
      const table = p(`${PROMPT_ENCODER}.embedding.weight`); // [nvt, d]: one batch of nvt steps
      const states = bidirectionalLstm(table, weights); // [nvt, 2h]
      const h1 = relu(nn.linear(states, p(`${m}.0.weight`), p(`${m}.0.bias`))); // [nvt, 2h]
      return nn.linear(h1, p(`${m}.2.weight`), p(`${m}.2.bias`)); // [nvt, d]
    },
  };
}

/**
 * Prefix tuning's reparameterisation (PEFT `PrefixEncoder` with prefix_projection = true):
 * Embedding(nvt, d) → Linear(d, h) → Tanh → Linear(h, outDim), with outDim = num_layers · 2 · token_dim. `tokenDim`
 * is PEFT's token_dim after its grouped-query adjustment (num_key_value_heads · head_dim); `hidden` is
 * encoder_hidden_size (default token_dim). `initWeights: 'zero'` is PEFT's init_weights "zero": the last linear starts
 * at zero, so the prefix starts as all-zero keys and values.
 */
export function prefixProjection(o: { virtualTokens: number; tokenDim: number; hidden?: number; outDim: number; initWeights?: 'zero' | null }): Encoder {
  const nvt = positive('virtualTokens', o.virtualTokens);
  const d = positive('tokenDim', o.tokenDim);
  const h = positive('hidden', o.hidden ?? d);
  const outDim = positive('outDim', o.outDim);
  const t = `${PREFIX_ENCODER}.transform`;
  const last = linearParams(`${t}.2`, h, outDim);
  const params: EncoderParam[] = [
    { name: `${PREFIX_ENCODER}.embedding.weight`, shape: [nvt, d], init: 'normal' },
    // nn.Sequential indices: 0 Linear, 1 Tanh, 2 Linear.
    ...linearParams(`${t}.0`, d, h),
    ...(o.initWeights === 'zero' ? last.map((p): EncoderParam => ({ ...p, init: 'zeros' })) : last),
  ];
  return {
    kind: 'prefix-projection',
    virtualTokens: nvt,
    outDim,
    params,
    build(g, input) {
      const p = paramGetter(g, params, input);
      const table = p(`${PREFIX_ENCODER}.embedding.weight`); // [nvt, d]
      const hidden = op.tanh(nn.linear(table, p(`${t}.0.weight`), p(`${t}.0.bias`))); // [nvt, h]
      return nn.linear(hidden, p(`${t}.2.weight`), p(`${t}.2.bias`)); // [nvt, outDim]
    },
  };
}

/**
 * Prefix tuning without projection (PEFT `PrefixEncoder` with prefix_projection = false): the learned table
 * `prefix_encoder.embedding.weight` [nvt, outDim] is the prefix itself. `initWeights: 'zero'` starts it at zero.
 */
export function prefixEmbedding(o: { virtualTokens: number; outDim: number; initWeights?: 'zero' | null }): Encoder {
  const nvt = positive('virtualTokens', o.virtualTokens);
  const outDim = positive('outDim', o.outDim);
  const name = `${PREFIX_ENCODER}.embedding.weight`;
  const params: EncoderParam[] = [{ name, shape: [nvt, outDim], init: o.initWeights === 'zero' ? 'zeros' : 'normal' }];
  return {
    kind: 'prefix-embedding',
    virtualTokens: nvt,
    outDim,
    params,
    build(g, input) {
      return paramGetter(g, params, input)(name); // [nvt, outDim]
    },
  };
}

/**
 * No encoder: the trainable table [nvt, outDim] saved as PEFT saves prompt-learning adapters (`prompt_embeddings`),
 * so an adapter file's tensor is this graph input. Starts N(0, 1), as nn.Embedding does.
 */
export function tableEncoder(o: { virtualTokens: number; outDim: number }): Encoder {
  const shape = [positive('virtualTokens', o.virtualTokens), positive('outDim', o.outDim)];
  const params: EncoderParam[] = [{ name: PROMPT_EMBEDDINGS_KEY, shape, init: 'normal' }];
  return {
    kind: 'table',
    virtualTokens: shape[0]!,
    outDim: shape[1]!,
    params,
    build: (g, input) => paramGetter(g, params, input)(PROMPT_EMBEDDINGS_KEY), // [nvt, outDim]
  };
}

/** FNV-1a over the text: each parameter gets its own stream, so its values do not depend on the others or their order. */
function hashString(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

/**
 * Initial values with PyTorch's default initialisers (see `EncoderInit`), reproducible from `seed`: each parameter
 * draws from `seededRandom` seeded with (seed, its name). The values are not PyTorch's own random stream.
 */
export function initEncoderParams(params: readonly EncoderParam[], seed: number, dtype: 'float32' | 'float64' = 'float32'): Map<string, HostTensor> {
  const out = new Map<string, HostTensor>();
  for (const p of params) {
    const t = hostTensor(dtype, p.shape);
    const data = t.data as Float32Array | Float64Array;
    const random = seededRandom(hashString(`${seed >>> 0}:${p.name}`));
    if (p.init === 'normal') {
      // Box-Muller in pairs; 1 - random() is in (0, 1], so the log stays finite.
      for (let i = 0; i < data.length; i += 2) {
        const r = Math.sqrt(-2 * Math.log(1 - random()));
        const theta = 2 * Math.PI * random();
        data[i] = r * Math.cos(theta);
        if (i + 1 < data.length) data[i + 1] = r * Math.sin(theta);
      }
    } else if (p.init !== 'zeros') {
      const b = p.init.uniform;
      for (let i = 0; i < data.length; i++) data[i] = (2 * random() - 1) * b;
    }
    out.set(p.name, t);
  }
  return out;
}

/**
 * A graph computing the encoder's output alone: inputs named as the parameters, output `prompt_embeddings`
 * [nvt, outDim], what PEFT saves for a prompt-learning adapter (`get_prompt_embedding_to_save`).
 */
export function encoderGraph(encoder: Encoder, dtype: DType = 'float32'): Graph {
  return trace((g) => ({ [PROMPT_EMBEDDINGS_KEY]: encoder.build(g, (name, shape) => g.input(name, dtype, shape)) }));
}
