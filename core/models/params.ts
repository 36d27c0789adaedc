/** Parameter names and shapes of a Llama-family model (identical to the Hugging Face tensor names), and random init. */
import type { HostTensor } from '../ir/host.ts';
import type { ModelConfig } from './config.ts';

export interface ParamSpec {
  name: string;
  shape: number[];
  /** What the tensor is, for init and for plugins choosing targets. */
  kind: 'embedding' | 'norm' | 'linear' | 'bias' | 'head';
}

/** Every parameter in checkpoint order. Tied models have no `lm_head.weight`. */
export function paramSpecs(c: ModelConfig): ParamSpec[] {
  const C = c.hidden, D = c.headDim;
  const specs: ParamSpec[] = [{ name: 'model.embed_tokens.weight', shape: [c.vocabSize, C], kind: 'embedding' }];
  const linear = (name: string, out: number, inp: number, bias: boolean) => {
    specs.push({ name: `${name}.weight`, shape: [out, inp], kind: 'linear' });
    if (bias) specs.push({ name: `${name}.bias`, shape: [out], kind: 'bias' });
  };
  for (let i = 0; i < c.layers; i++) {
    const p = `model.layers.${i}`;
    specs.push({ name: `${p}.input_layernorm.weight`, shape: [C], kind: 'norm' });
    linear(`${p}.self_attn.q_proj`, c.heads * D, C, c.qkvBias);
    linear(`${p}.self_attn.k_proj`, c.kvHeads * D, C, c.qkvBias);
    linear(`${p}.self_attn.v_proj`, c.kvHeads * D, C, c.qkvBias);
    linear(`${p}.self_attn.o_proj`, C, c.heads * D, c.oBias);
    specs.push({ name: `${p}.post_attention_layernorm.weight`, shape: [C], kind: 'norm' });
    linear(`${p}.mlp.gate_proj`, c.intermediate, C, c.mlpBias);
    linear(`${p}.mlp.up_proj`, c.intermediate, C, c.mlpBias);
    linear(`${p}.mlp.down_proj`, C, c.intermediate, c.mlpBias);
  }
  specs.push({ name: 'model.norm.weight', shape: [C], kind: 'norm' });
  if (!c.tieWordEmbeddings) specs.push({ name: 'lm_head.weight', shape: [c.vocabSize, C], kind: 'head' });
  return specs;
}

export function parameterCount(c: ModelConfig): number {
  return paramSpecs(c).reduce((s, p) => s + p.shape.reduce((a, b) => a * b, 1), 0);
}

/**
 * Random weights as Hugging Face initialises Llama: N(0, 0.02) for matrices and embeddings, ones for norms, zeros
 * for biases. Deterministic for a seed.
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
    if (p.kind === 'norm') data.fill(1);
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
