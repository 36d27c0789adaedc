import { ropeInvFreq } from '../nn/rope.ts';
import type { ModelConfig } from './config.ts';

/**
 * Rotary inverse frequencies with the config's scaling applied (Hugging Face's default, linear and llama3 rules;
 * for LongRoPE the short factors, see `longInvFreq`), over the family's rotary dims (all of head_dim except Phi-3's
 * partial rotary).
 */
export function scaledInvFreq(c: ModelConfig): Float64Array {
  const base = ropeInvFreq(c.family.rotaryDim, c.ropeTheta);
  const s = c.ropeScaling;
  if (s.type === 'default') return base;
  if (s.type === 'linear') return base.map((f) => f / s.factor);
  if (s.type === 'longrope') return base.map((f, i) => f / s.shortFactor[i]!);
  // llama3: long wavelengths are divided by `factor`, short ones kept, the band between interpolated smoothly.
  const lowFreqWavelen = s.originalMaxPositions / s.lowFreqFactor;
  const highFreqWavelen = s.originalMaxPositions / s.highFreqFactor;
  return base.map((f) => {
    const wavelen = (2 * Math.PI) / f;
    if (wavelen < highFreqWavelen) return f;
    if (wavelen > lowFreqWavelen) return f / s.factor;
    const smooth = (s.originalMaxPositions / wavelen - s.lowFreqFactor) / (s.highFreqFactor - s.lowFreqFactor);
    return (1 - smooth) * (f / s.factor) + smooth * f;
  });
}

/** LongRoPE's frequencies for passes reaching beyond original_max_position_embeddings (the long factors). */
export function longInvFreq(c: ModelConfig): Float64Array | null {
  const s = c.ropeScaling;
  if (s.type !== 'longrope') return null;
  return ropeInvFreq(c.family.rotaryDim, c.ropeTheta).map((f, i) => f / s.longFactor[i]!);
}

/** Gemma 3's sliding layers: rope_local_base_freq, never scaled. */
export function localInvFreq(c: ModelConfig): Float64Array {
  return ropeInvFreq(c.family.rotaryDim, c.family.localRopeTheta ?? c.ropeTheta);
}
