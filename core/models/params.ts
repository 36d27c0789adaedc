/** Parameter names and shapes of every supported family (identical to the Hugging Face tensor names), and random init. */
import type { HostTensor } from '../ir/host.ts';
import type { ModelConfig } from './config.ts';

export interface ParamSpec {
  name: string;
  shape: number[];
  /** What the tensor is, for init and for plugins choosing targets. */
  kind: 'embedding' | 'norm' | 'linear' | 'bias' | 'head';
}

/** Hugging Face module paths of a layer's MLP, by family (dense gated MLP, or router + experts). */
export interface MlpNames {
  kind: 'dense' | 'moe';
  /** Dense: gate_proj, up_proj, down_proj (Phi-3: gate_up_proj fused, then down_proj). */
  gate: string; up: string; down: string; gateUp: string;
  /** MoE: the router and expert e's gate (w1), up (w3) and down (w2) projections. */
  router: string;
  expert(e: number): { gate: string; up: string; down: string };
}

export function mlpNames(c: ModelConfig, layer: number): MlpNames {
  const p = `model.layers.${layer}`;
  const moe = c.family.moe;
  const dense = { gate: `${p}.mlp.gate_proj`, up: `${p}.mlp.up_proj`, down: `${p}.mlp.down_proj`, gateUp: `${p}.mlp.gate_up_proj` };
  if (!moe || !c.family.layers[layer]!.moe) return { kind: 'dense', ...dense, router: '', expert: () => { throw new Error('internal: dense layer has no experts'); } };
  const block = moe.naming === 'mixtral' ? `${p}.block_sparse_moe` : `${p}.mlp`;
  const expert = (e: number) => moe.naming === 'mixtral'
    ? { gate: `${block}.experts.${e}.w1`, up: `${block}.experts.${e}.w3`, down: `${block}.experts.${e}.w2` }
    : { gate: `${block}.experts.${e}.gate_proj`, up: `${block}.experts.${e}.up_proj`, down: `${block}.experts.${e}.down_proj` };
  return { kind: 'moe', ...dense, router: `${block}.gate`, expert };
}

/**
 * Every parameter in checkpoint order (Llama's layer order; other families' extra tensors beside the ones they
 * qualify). Tied models have no `lm_head.weight`.
 */
export function paramSpecs(c: ModelConfig): ParamSpec[] {
  const C = c.hidden, D = c.headDim, f = c.family;
  const specs: ParamSpec[] = [{ name: 'model.embed_tokens.weight', shape: [c.vocabSize, C], kind: 'embedding' }];
  const linear = (name: string, out: number, inp: number, bias: boolean) => {
    specs.push({ name: `${name}.weight`, shape: [out, inp], kind: 'linear' });
    if (bias) specs.push({ name: `${name}.bias`, shape: [out], kind: 'bias' });
  };
  const norm = (name: string, size: number) => specs.push({ name: `${name}.weight`, shape: [size], kind: 'norm' });
  for (let i = 0; i < c.layers; i++) {
    const p = `model.layers.${i}`;
    if (f.blockNorms !== 'post') norm(`${p}.input_layernorm`, C);
    if (f.fused) linear(`${p}.self_attn.qkv_proj`, (c.heads + 2 * c.kvHeads) * D, C, c.qkvBias);
    else {
      linear(`${p}.self_attn.q_proj`, c.heads * D, C, c.qkvBias);
      linear(`${p}.self_attn.k_proj`, c.kvHeads * D, C, c.qkvBias);
      linear(`${p}.self_attn.v_proj`, c.kvHeads * D, C, c.qkvBias);
    }
    linear(`${p}.self_attn.o_proj`, C, c.heads * D, c.oBias);
    if (f.qkNorm !== 'none') {
      norm(`${p}.self_attn.q_norm`, f.qkNorm === 'head' ? D : c.heads * D);
      norm(`${p}.self_attn.k_norm`, f.qkNorm === 'head' ? D : c.kvHeads * D);
    }
    norm(`${p}.post_attention_layernorm`, C);
    if (f.blockNorms === 'sandwich') norm(`${p}.pre_feedforward_layernorm`, C);
    if (f.blockNorms !== 'pre') norm(`${p}.post_feedforward_layernorm`, C);
    const m = mlpNames(c, i);
    if (m.kind === 'moe') {
      const moe = f.moe!;
      linear(m.router, moe.experts, C, false); // the router: a linear layer of its own (PEFT's all-linear includes it)
      for (let e = 0; e < moe.experts; e++) {
        const x = m.expert(e);
        linear(x.gate, moe.intermediate, C, false);
        linear(x.up, moe.intermediate, C, false);
        linear(x.down, C, moe.intermediate, false);
      }
    } else if (f.fused) {
      linear(m.gateUp, 2 * c.intermediate, C, c.mlpBias);
      linear(m.down, C, c.intermediate, c.mlpBias);
    } else {
      linear(m.gate, c.intermediate, C, c.mlpBias);
      linear(m.up, c.intermediate, C, c.mlpBias);
      linear(m.down, C, c.intermediate, c.mlpBias);
    }
  }
  specs.push({ name: 'model.norm.weight', shape: [C], kind: 'norm' });
  if (!c.tieWordEmbeddings) specs.push({ name: 'lm_head.weight', shape: [c.vocabSize, C], kind: 'head' });
  return specs;
}

export function parameterCount(c: ModelConfig): number {
  return paramSpecs(c).reduce((s, p) => s + p.shape.reduce((a, b) => a * b, 1), 0);
}

/**
 * Random weights as Hugging Face initialises Llama: N(0, 0.02) for matrices and embeddings, ones for norms (zeros
 * where the family scales by 1 + w, as Gemma's init does), zeros for biases. Deterministic for a seed.
 */
export function randomWeights(c: ModelConfig, seed = 0, std = 0.02): Map<string, HostTensor> {
  let state = (seed * 0x9e3779b9) >>> 0 || 1;
  const uniform = () => {
    // xorshift32: fast enough for 100M+ draws
    state ^= state << 13; state >>>= 0;
    state ^= state >>> 17;
    state ^= state << 5; state >>>= 0;
    return (state + 0.5) / 4294967296;
  };
  const out = new Map<string, HostTensor>();
  for (const p of paramSpecs(c)) {
    const n = p.shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    if (p.kind === 'norm') data.fill(c.family.normPlusOne ? 0 : 1);
    else if (p.kind !== 'bias') {
      for (let i = 0; i + 1 < n; i += 2) {
        const r = Math.sqrt(-2 * Math.log(uniform())) * std, t = 2 * Math.PI * uniform();
        data[i] = r * Math.cos(t);
        data[i + 1] = r * Math.sin(t);
      }
      if (n % 2) data[n - 1] = std * Math.sqrt(-2 * Math.log(uniform())) * Math.cos(2 * Math.PI * uniform());
    }
    out.set(p.name, { dtype: 'float32', shape: p.shape, data });
  }
  return out;
}
