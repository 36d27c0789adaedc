/** Composite functions (core/nn) checked end to end against finite differences, in both modes. */
import { describe, expect, test } from 'bun:test';
import * as nn from '../core/nn/index.ts';
import * as op from '../core/ops/api.ts';
import { route } from '../core/models/moe.ts';
import { gradTable, type GradCase } from './gradcheck.ts';

const rope = (x: ReturnType<typeof op.add>) => {
  const [, , T, D] = x.shape as number[];
  const positions = op.iota(x, [T!], 0);
  const { cos, sin } = nn.ropeTables(positions, nn.ropeInvFreq(D!, 10000), x.dtype);
  return nn.applyRope(x, cos, sin);
};

const CASES: GradCase[] = [
  { name: 'linear with bias', inputs: [{ shape: [2, 3, 4] }, { shape: [5, 4] }, { shape: [5] }], fn: (x, w, b) => nn.linear(x!, w!, b) },
  { name: 'embedding', inputs: [{ shape: [6, 3] }, { shape: [2, 3], kind: 'int', range: 6 }], fn: (t, i) => nn.embedding(t!, i!) },
  { name: 'rmsNorm', inputs: [{ shape: [2, 3, 8] }, { shape: [8] }], fn: (x, w) => nn.rmsNorm(x!, w!, 1e-5) },
  { name: 'layerNorm', inputs: [{ shape: [3, 8] }, { shape: [8] }, { shape: [8] }], fn: (x, w, b) => nn.layerNorm(x!, w, b, 1e-5) },
  { name: 'softmax', inputs: [{ shape: [3, 7] }], fn: (x) => nn.softmax(x) },
  { name: 'logSoftmax', inputs: [{ shape: [3, 7] }], fn: (x) => nn.logSoftmax(x) },
  { name: 'silu', inputs: [{ shape: [4, 5] }], fn: nn.silu },
  { name: 'gelu (erf)', inputs: [{ shape: [4, 5] }], fn: (x) => nn.gelu(x), dtype: 'float32' },
  { name: 'gelu (tanh)', inputs: [{ shape: [4, 5] }], fn: (x) => nn.gelu(x, 'tanh') },
  { name: 'rotary embedding', inputs: [{ shape: [2, 2, 5, 8] }], fn: rope },
  {
    name: 'causal GQA attention',
    inputs: [{ shape: [2, 4, 5, 8] }, { shape: [2, 2, 5, 8] }, { shape: [2, 2, 5, 8] }],
    fn: (q, k, v) => nn.attention(q!, k!, v!, nn.causalMask(q!, 5, 5)),
  },
  { name: 'softCap c·tanh(x/c) (Gemma 2)', inputs: [{ shape: [3, 5] }], fn: (x) => nn.softCap(op.mul(x!, 4), 3) },
  {
    name: 'causal GQA attention, scaled and soft-capped',
    inputs: [{ shape: [2, 4, 5, 8] }, { shape: [2, 2, 5, 8] }, { shape: [2, 2, 5, 8] }],
    fn: (q, k, v) => nn.attention(q!, k!, v!, nn.causalMask(q!, 5, 5), 0.3, 2),
  },
  // Away from ties the top-k choice is locally constant, so the derivative flows through the kept probabilities.
  { name: 'MoE routing weights: softmax, top-2 of 4, renormalised', inputs: [{ shape: [2, 3, 4] }], fn: (x) => route(op.mul(x!, 3), 2, true).weights },
  { name: 'MoE routing weights: softmax, top-2 of 5, not renormalised', inputs: [{ shape: [2, 3, 5] }], fn: (x) => route(op.mul(x!, 3), 2, false).weights },
  {
    name: 'cross-entropy with ignore index',
    inputs: [{ shape: [2, 4, 7] }, { shape: [2, 4], kind: 'int', values: [1, 6, -100, 0, 3, -100, -100, 2] }],
    fn: (logits, labels) => nn.crossEntropy(logits!, labels!),
  },
  {
    name: 'cross-entropy with ignore index -1',
    inputs: [{ shape: [2, 4, 7] }, { shape: [2, 4], kind: 'int', values: [1, -1, 6, 0, -1, 3, 2, 5] }],
    fn: (logits, labels) => nn.crossEntropy(logits!, labels!, { ignoreIndex: -1 }),
  },
];

gradTable('composite derivatives vs finite differences', CASES);
