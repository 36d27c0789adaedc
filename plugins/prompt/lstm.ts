/**
 * A bidirectional multi-layer LSTM, unrolled over a short sequence from primitives (matmul, add, slice, sigmoid,
 * tanh, mul, concat). It follows PyTorch's `nn.LSTM(..., bidirectional=True, batch_first=True)` for one sequence:
 *
 *   gates = W_ih x_t + b_ih + W_hh h_{t-1} + b_hh          [4h], in PyTorch's order i, f, g, o
 *   i = σ(gates_i), f = σ(gates_f), g = tanh(gates_g), o = σ(gates_o)
 *   c_t = f ⊙ c_{t-1} + i ⊙ g,   h_t = o ⊙ tanh(c_t),   h_0 = c_0 = 0
 *
 * The reverse direction runs the same cell from the last step to the first; each layer's output at step t is
 * [h_fwd(t), h_bwd(t)], and layer l > 0 reads the previous layer's [T, 2h] output. There is no dropout between
 * layers (PyTorch applies it only when `dropout > 0` and training; callers reject dropout > 0).
 *
 * Unrolling is affordable because the sequence is the table of virtual tokens (tens of steps, batch 1): the graph
 * has about 15 equations per step, direction and layer, and it is traced once per compiled step.
 */
import { nn, op, type Tensor } from '../../core/index.ts';

/** One direction of one layer, in PyTorch's layout. */
export interface LstmCellWeights {
  weightIh: Tensor; // [4h, in]
  weightHh: Tensor; // [4h, h]
  biasIh: Tensor; // [4h]
  biasHh: Tensor; // [4h]
}

/** Both directions of one layer. */
export interface LstmLayerWeights {
  forward: LstmCellWeights;
  reverse: LstmCellWeights;
}

function staticDim(t: Tensor, axis: number, what: string): number {
  const d = t.shape[axis];
  if (typeof d !== 'number') throw new Error(`${what}: axis ${axis} must have a static size, got '${String(d)}'`);
  return d;
}

/** Runs one direction of one layer over x [T, in]; returns the hidden states at each step, in step order: [T, h]. */
export function lstmDirection(x: Tensor, w: LstmCellWeights, reverse: boolean): Tensor {
  if (x.rank !== 2) throw new Error(`lstm input must be [T, in], got rank ${x.rank}`);
  const steps = staticDim(x, 0, 'lstm input');
  const h = staticDim(w.weightHh, 1, 'lstm weight_hh');
  // The input projection of every step in one matmul, both biases folded in: only W_hh h_{t-1} stays sequential.
  const inputGates = op.add(nn.linear(x, w.weightIh, w.biasIh), w.biasHh); // [T, 4h]
  const outputs: Tensor[] = new Array<Tensor>(steps);
  let hPrev: Tensor | undefined; // [1, h]
  let cPrev: Tensor | undefined; // [1, h]
  for (let s = 0; s < steps; s++) {
    const t = reverse ? steps - 1 - s : s;
    let gates = op.slice(inputGates, 0, t, t + 1); // [1, 4h]
    // h_0 = 0: the first step has no recurrent term (no matmul by zeros in the graph).
    if (hPrev) gates = op.add(gates, nn.linear(hPrev, w.weightHh)); // [1, 4h]
    const i = op.sigmoid(op.slice(gates, 1, 0, h)); // [1, h]
    const g = op.tanh(op.slice(gates, 1, 2 * h, 3 * h)); // [1, h]
    const o = op.sigmoid(op.slice(gates, 1, 3 * h, 4 * h)); // [1, h]
    // c_0 = 0: the forget gate only matters from the second step on.
    const c = cPrev ? op.add(op.mul(op.sigmoid(op.slice(gates, 1, h, 2 * h)), cPrev), op.mul(i, g)) : op.mul(i, g); // [1, h]
    hPrev = op.mul(o, op.tanh(c)); // [1, h]
    cPrev = c;
    outputs[t] = hPrev;
  }
  return op.concat(outputs, 0); // [T, h]
}

/** A stacked bidirectional LSTM over x [T, in]: returns the last layer's [forward, reverse] states, [T, 2h]. */
export function bidirectionalLstm(x: Tensor, layers: readonly LstmLayerWeights[]): Tensor {
  if (layers.length === 0) throw new Error('bidirectionalLstm needs at least one layer');
  let seq = x; // [T, in] for layer 0, then [T, 2h]
  for (const layer of layers) {
    seq = op.concat([lstmDirection(seq, layer.forward, false), lstmDirection(seq, layer.reverse, true)], 1); // [T, 2h]
  }
  return seq;
}

/**
 * PyTorch's parameter names and shapes for `nn.LSTM(input, hidden, layers, bidirectional=True)`, in its
 * registration order: per layer, the forward direction's weight_ih, weight_hh, bias_ih, bias_hh, then the same with
 * `_reverse`.
 */
export function lstmParamShapes(input: number, hidden: number, layers: number): { name: string; shape: number[] }[] {
  const out: { name: string; shape: number[] }[] = [];
  for (let l = 0; l < layers; l++) {
    const inDim = l === 0 ? input : 2 * hidden; // layer l > 0 reads [forward, reverse] of layer l - 1
    for (const suffix of ['', '_reverse']) {
      out.push({ name: `weight_ih_l${l}${suffix}`, shape: [4 * hidden, inDim] });
      out.push({ name: `weight_hh_l${l}${suffix}`, shape: [4 * hidden, hidden] });
      out.push({ name: `bias_ih_l${l}${suffix}`, shape: [4 * hidden] });
      out.push({ name: `bias_hh_l${l}${suffix}`, shape: [4 * hidden] });
    }
  }
  return out;
}
