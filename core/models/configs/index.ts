/**
 * The real `config.json` of a few published checkpoints, stored beside this file as Hugging Face wrote them, so that
 * benchmarks and tests build randomly initialised models of real shapes without downloading anything:
 *
 *   const c = parseConfig(realConfig('qwen3-30b-a3b', { layers: 1 }));
 *   const weights = randomWeights(c);
 *
 * | name                  | checkpoint                    | family            |
 * | --------------------- | ----------------------------- | ----------------- |
 * | `qwen3-0.6b`          | Qwen/Qwen3-0.6B               | Qwen3             |
 * | `gemma-3-270m`        | google/gemma-3-270m           | Gemma 3 (text)    |
 * | `phi-4-mini-instruct` | microsoft/Phi-4-mini-instruct | Phi-3 (LongRoPE)  |
 * | `qwen3-30b-a3b`       | Qwen/Qwen3-30B-A3B            | Qwen3-MoE         |
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { RawConfig } from '../config.ts';

export const REAL_CONFIGS = ['qwen3-0.6b', 'gemma-3-270m', 'phi-4-mini-instruct', 'qwen3-30b-a3b'] as const;
export type RealConfigName = (typeof REAL_CONFIGS)[number];

export interface RealConfigOptions {
  /**
   * Keep only the first `layers` decoder layers (every layer keeps its real shapes, the vocabulary stays): a model
   * too large for the machine then still runs at its real per-layer cost. Per-layer lists (`layer_types`,
   * `no_rope_layers`, `mlp_only_layers`) are cut to match.
   */
  layers?: number;
}

/** The stored config.json of a published model (a fresh copy each call), optionally cut to its first layers. */
export function realConfig(name: RealConfigName, opts: RealConfigOptions = {}): RawConfig {
  if (!(REAL_CONFIGS as readonly string[]).includes(name)) {
    throw new Error(`realConfig: unknown model '${name}'; known: ${REAL_CONFIGS.join(', ')}`);
  }
  const path = fileURLToPath(new URL(`./${name}.json`, import.meta.url));
  const raw = JSON.parse(readFileSync(path, 'utf8')) as RawConfig & Record<string, unknown>;
  const layers = opts.layers;
  if (layers === undefined) return raw;
  if (!Number.isInteger(layers) || layers < 1 || layers > raw.num_hidden_layers) {
    throw new Error(`realConfig('${name}'): layers must be an integer from 1 to ${raw.num_hidden_layers}, got ${layers}`);
  }
  const cut: Record<string, unknown> = { ...raw, num_hidden_layers: layers };
  for (const key of ['layer_types', 'no_rope_layers']) {
    const list = raw[key];
    if (Array.isArray(list)) cut[key] = list.slice(0, layers);
  }
  if (Array.isArray(raw.mlp_only_layers)) cut.mlp_only_layers = (raw.mlp_only_layers as number[]).filter((i) => i < layers);
  return cut as RawConfig;
}
