import { ropeInvFreq } from '../nn/rope.ts';
import type { ModelConfig } from './config.ts';

/** Rotary inverse frequencies with the config's scaling applied (Hugging Face's default, linear and llama3 rules). */
export function scaledInvFreq(c: ModelConfig): Float64Array {
  const base = ropeInvFreq(c.headDim, c.ropeTheta);
  const s = c.ropeScaling;
  if (s.type === 'default') return base;
  if (s.type === 'linear') return base.map((f) => f / s.factor);
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
