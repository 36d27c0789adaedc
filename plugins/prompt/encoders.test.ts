/**
 * The prompt-learning encoders: derivatives against finite differences (both modes), outputs against plain
 * JavaScript references (the LSTM written out as PyTorch defines it), parameter names, and initial values.
 */
import { describe, expect, test } from 'bun:test';
import { compile, hostTensor, trace, type HostTensor, type Tensor } from '../../core/index.ts';
import { gradTable, normal, rng, type GradCase } from '../../tests/gradcheck.ts';
import {
  encoderGraph,
  initEncoderParams,
  lstmPromptEncoder,
  mlpPromptEncoder,
  prefixEmbedding,
  prefixProjection,
  PROMPT_EMBEDDINGS_KEY,
  type Encoder,
} from './encoders.ts';
import { bidirectionalLstm, lstmParamShapes, type LstmCellWeights } from './lstm.ts';

/** A finite-difference row: every parameter is one differentiable input, in declaration order. */
function encoderCase(name: string, enc: Encoder): GradCase {
  return {
    name,
    inputs: enc.params.map((p) => ({ shape: p.shape })),
    fn: (...xs: Tensor[]) => {
      const byName = new Map(enc.params.map((p, i) => [p.name, xs[i]!]));
      return enc.build(xs[0]!.builder, (n) => byName.get(n)!);
    },
  };
}

gradTable('prompt encoders vs finite differences (float64)', [
  encoderCase('p-tuning MLP', mlpPromptEncoder({ virtualTokens: 3, tokenDim: 4, hidden: 5 })),
  encoderCase('p-tuning LSTM, 2 layers', lstmPromptEncoder({ virtualTokens: 3, tokenDim: 4, hidden: 5, layers: 2 })),
  encoderCase('p-tuning LSTM, 1 layer, hidden = token_dim', lstmPromptEncoder({ virtualTokens: 3, tokenDim: 4, layers: 1 })),
  encoderCase('prefix projection', prefixProjection({ virtualTokens: 3, tokenDim: 4, hidden: 5, outDim: 2 * 2 * 4 })),
  encoderCase('prefix embedding', prefixEmbedding({ virtualTokens: 3, outDim: 8 })),
]);

// ---------------------------------------------------------------------------------------------------------------
// Plain-JavaScript references (float64 loops).

type Matrix = number[][];

function rows(t: HostTensor): Matrix {
  const [r, c] = t.shape.length === 2 ? [t.shape[0]!, t.shape[1]!] : [1, t.shape[0]!];
  return Array.from({ length: r }, (_, i) => Array.from(t.data.subarray(i * c, (i + 1) * c) as Float64Array));
}

/** y = x Wᵀ + b for each row of x. */
function linearRef(x: Matrix, w: Matrix, b: number[]): Matrix {
  return x.map((row) => w.map((wr, o) => wr.reduce((s, wv, j) => s + wv * row[j]!, b[o]!)));
}

const reluRef = (x: Matrix): Matrix => x.map((r) => r.map((v) => Math.max(v, 0)));
const sigmoidRef = (v: number): number => 1 / (1 + Math.exp(-v));

interface CellRef {
  wih: Matrix; // [4h, in]
  whh: Matrix; // [4h, h]
  bih: number[];
  bhh: number[];
}

/** One direction of PyTorch's LSTM, step by step: gates in order i, f, g, o; h_0 = c_0 = 0. */
function lstmDirectionRef(x: Matrix, w: CellRef, reverse: boolean): Matrix {
  const hidden = w.whh[0]!.length;
  const out: Matrix = new Array<number[]>(x.length);
  let h = new Array<number>(hidden).fill(0);
  let c = new Array<number>(hidden).fill(0);
  for (let s = 0; s < x.length; s++) {
    const t = reverse ? x.length - 1 - s : s;
    const gates = w.wih.map((wr, k) => {
      let acc = w.bih[k]! + w.bhh[k]!;
      for (let j = 0; j < wr.length; j++) acc += wr[j]! * x[t]![j]!;
      for (let j = 0; j < hidden; j++) acc += w.whh[k]![j]! * h[j]!;
      return acc;
    });
    const cNext = new Array<number>(hidden);
    const hNext = new Array<number>(hidden);
    for (let u = 0; u < hidden; u++) {
      const i = sigmoidRef(gates[u]!);
      const f = sigmoidRef(gates[hidden + u]!);
      const g = Math.tanh(gates[2 * hidden + u]!);
      const o = sigmoidRef(gates[3 * hidden + u]!);
      cNext[u] = f * c[u]! + i * g;
      hNext[u] = o * Math.tanh(cNext[u]!);
    }
    h = hNext;
    c = cNext;
    out[t] = hNext;
  }
  return out;
}

/** Stacked bidirectional LSTM: each layer's step t is [forward(t), reverse(t)]; layer l > 0 reads layer l − 1. */
function bidirectionalLstmRef(x: Matrix, layers: { forward: CellRef; reverse: CellRef }[]): Matrix {
  let seq = x;
  for (const layer of layers) {
    const f = lstmDirectionRef(seq, layer.forward, false);
    const r = lstmDirectionRef(seq, layer.reverse, true);
    seq = f.map((row, t) => [...row, ...r[t]!]);
  }
  return seq;
}

/** Random float64 values for every parameter: N(0, 1) · scale, so the gates leave their linear range. */
function randomParams(enc: Encoder, seed: number, scale = 0.8): Map<string, HostTensor> {
  const rand = rng(seed);
  return new Map(enc.params.map((p) => [p.name, hostTensor('float64', p.shape, Array.from({ length: p.shape.reduce((a, b) => a * b, 1) }, () => scale * normal(rand)))]));
}

async function runEncoder(enc: Encoder, values: Map<string, HostTensor>): Promise<Matrix> {
  const exe = await compile(encoderGraph(enc, 'float64'));
  const out = (await exe.run(Object.fromEntries(values)))[PROMPT_EMBEDDINGS_KEY]!;
  await exe.release();
  expect(out.shape).toEqual([enc.virtualTokens, enc.outDim]);
  return rows(out);
}

function expectMatrixClose(actual: Matrix, expected: Matrix, tol: number): void {
  expect(actual.length).toBe(expected.length);
  let worst = 0;
  actual.forEach((r, i) => {
    expect(r.length).toBe(expected[i]!.length);
    r.forEach((v, j) => { worst = Math.max(worst, Math.abs(v - expected[i]![j]!)); });
  });
  expect(worst).toBeLessThanOrEqual(tol);
}

const cellRef = (v: Map<string, HostTensor>, prefix: string, l: number, suffix: string): CellRef => ({
  wih: rows(v.get(`${prefix}weight_ih_l${l}${suffix}`)!),
  whh: rows(v.get(`${prefix}weight_hh_l${l}${suffix}`)!),
  bih: rows(v.get(`${prefix}bias_ih_l${l}${suffix}`)!)[0]!,
  bhh: rows(v.get(`${prefix}bias_hh_l${l}${suffix}`)!)[0]!,
});

describe('outputs vs plain-JavaScript references (float64, within 1e-9)', () => {
  test('bidirectional LSTM alone, 1 to 3 layers: forward, reverse and upper layers', async () => {
    const [steps, input, hidden] = [5, 3, 4];
    for (const layers of [1, 2, 3]) {
      const shapes = lstmParamShapes(input, hidden, layers);
      const rand = rng(100 + layers);
      const draw = (shape: number[]) => hostTensor('float64', shape, Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => normal(rand)));
      const values = new Map<string, HostTensor>([['x', draw([steps, input])], ...shapes.map((s): [string, HostTensor] => [s.name, draw(s.shape)])]);
      const graph = trace((g) => {
        const p = (n: string) => g.input(n, 'float64', values.get(n)!.shape);
        const cell = (l: number, suffix: string): LstmCellWeights => ({
          weightIh: p(`weight_ih_l${l}${suffix}`), weightHh: p(`weight_hh_l${l}${suffix}`), biasIh: p(`bias_ih_l${l}${suffix}`), biasHh: p(`bias_hh_l${l}${suffix}`),
        });
        const x = p('x'); // [T, in]
        return { y: bidirectionalLstm(x, Array.from({ length: layers }, (_, l) => ({ forward: cell(l, ''), reverse: cell(l, '_reverse') }))) };
      });
      const exe = await compile(graph);
      const y = (await exe.run(Object.fromEntries(values))).y!;
      await exe.release();
      expect(y.shape).toEqual([steps, 2 * hidden]);
      const expected = bidirectionalLstmRef(rows(values.get('x')!), Array.from({ length: layers }, (_, l) => ({ forward: cellRef(values, '', l, ''), reverse: cellRef(values, '', l, '_reverse') })));
      expectMatrixClose(rows(y), expected, 1e-9);
      // Sanity: the reverse weights run forwards give another value at step 0, so the comparison above does see
      // which way the reverse direction runs.
      expect(Math.abs(expected[0]![hidden]! - lstmDirectionRef(rows(values.get('x')!), cellRef(values, '', 0, '_reverse'), false)[0]![0]!)).toBeGreaterThan(1e-6);
    }
  });

  test('p-tuning LSTM encoder (2 layers) end to end', async () => {
    const enc = lstmPromptEncoder({ virtualTokens: 4, tokenDim: 3, hidden: 5 });
    const v = randomParams(enc, 7);
    const pre = 'prompt_encoder.lstm_head.';
    const states = bidirectionalLstmRef(rows(v.get('prompt_encoder.embedding.weight')!), [0, 1].map((l) => ({ forward: cellRef(v, pre, l, ''), reverse: cellRef(v, pre, l, '_reverse') })));
    const m = (k: string) => rows(v.get(`prompt_encoder.mlp_head.${k}`)!);
    const expected = linearRef(reluRef(linearRef(states, m('0.weight'), m('0.bias')[0]!)), m('2.weight'), m('2.bias')[0]!);
    expectMatrixClose(await runEncoder(enc, v), expected, 1e-9);
  });

  test('p-tuning LSTM encoder matches PyTorch (recorded values)', async () => {
    // Recorded once by running PEFT's own PromptEncoder (LSTM, encoder_num_layers 2) on PyTorch 1.13 in float64,
    // with parameter j (named_parameters() order, which is ours) filled row-major with sin(0.5 + 1.1 k + 0.37 j).
    const enc = lstmPromptEncoder({ virtualTokens: 4, tokenDim: 3, hidden: 2 });
    const values = new Map(enc.params.map((p, j) => [p.name, hostTensor('float64', p.shape, Array.from({ length: p.shape.reduce((a, b) => a * b, 1) }, (_, k) => Math.sin(0.5 + 1.1 * k + 0.37 * j)))]));
    const torchOutput = [
      [1.6219425713920415, 0.7461613627808945, -1.4533965909450597],
      [1.5916334611031049, 0.5477247385486232, -1.301115286187857],
      [1.635957739353921, 0.714356136061647, -1.4478621756910577],
      [1.6983520542281973, 0.5224265683297364, -1.392283960795803],
    ];
    expectMatrixClose(await runEncoder(enc, values), torchOutput, 1e-12);
  });

  test('p-tuning MLP encoder', async () => {
    const enc = mlpPromptEncoder({ virtualTokens: 4, tokenDim: 3, hidden: 6 });
    const v = randomParams(enc, 8);
    const m = (k: string) => rows(v.get(`prompt_encoder.mlp_head.${k}`)!);
    let x = rows(v.get('prompt_encoder.embedding.weight')!);
    x = reluRef(linearRef(x, m('0.weight'), m('0.bias')[0]!));
    x = reluRef(linearRef(x, m('2.weight'), m('2.bias')[0]!));
    expectMatrixClose(await runEncoder(enc, v), linearRef(x, m('4.weight'), m('4.bias')[0]!), 1e-9);
  });

  test('prefix projection', async () => {
    const enc = prefixProjection({ virtualTokens: 4, tokenDim: 3, hidden: 6, outDim: 12 });
    const v = randomParams(enc, 9);
    const t = (k: string) => rows(v.get(`prefix_encoder.transform.${k}`)!);
    const hidden = linearRef(rows(v.get('prefix_encoder.embedding.weight')!), t('0.weight'), t('0.bias')[0]!).map((r) => r.map(Math.tanh));
    expectMatrixClose(await runEncoder(enc, v), linearRef(hidden, t('2.weight'), t('2.bias')[0]!), 1e-9);
  });
});

// ---------------------------------------------------------------------------------------------------------------

describe('parameters: PEFT names and PyTorch shapes', () => {
  const layout = (enc: Encoder) => enc.params.map((p) => `${p.name} [${p.shape.join(',')}]`);

  test('p-tuning MLP', () => {
    expect(layout(mlpPromptEncoder({ virtualTokens: 3, tokenDim: 4, hidden: 5 }))).toEqual([
      'prompt_encoder.embedding.weight [3,4]',
      'prompt_encoder.mlp_head.0.weight [5,4]', 'prompt_encoder.mlp_head.0.bias [5]',
      'prompt_encoder.mlp_head.2.weight [5,5]', 'prompt_encoder.mlp_head.2.bias [5]',
      'prompt_encoder.mlp_head.4.weight [4,5]', 'prompt_encoder.mlp_head.4.bias [4]',
    ]);
    // encoder_hidden_size defaults to token_dim, as PEFT's prepare_prompt_learning_config does.
    expect(mlpPromptEncoder({ virtualTokens: 3, tokenDim: 4 }).params[1]!.shape).toEqual([4, 4]);
  });

  test('p-tuning LSTM (default 2 layers)', () => {
    const lstm = (s: string) => `prompt_encoder.lstm_head.${s}`;
    expect(layout(lstmPromptEncoder({ virtualTokens: 3, tokenDim: 4, hidden: 5 }))).toEqual([
      'prompt_encoder.embedding.weight [3,4]',
      `${lstm('weight_ih_l0')} [20,4]`, `${lstm('weight_hh_l0')} [20,5]`, `${lstm('bias_ih_l0')} [20]`, `${lstm('bias_hh_l0')} [20]`,
      `${lstm('weight_ih_l0_reverse')} [20,4]`, `${lstm('weight_hh_l0_reverse')} [20,5]`, `${lstm('bias_ih_l0_reverse')} [20]`, `${lstm('bias_hh_l0_reverse')} [20]`,
      `${lstm('weight_ih_l1')} [20,10]`, `${lstm('weight_hh_l1')} [20,5]`, `${lstm('bias_ih_l1')} [20]`, `${lstm('bias_hh_l1')} [20]`,
      `${lstm('weight_ih_l1_reverse')} [20,10]`, `${lstm('weight_hh_l1_reverse')} [20,5]`, `${lstm('bias_ih_l1_reverse')} [20]`, `${lstm('bias_hh_l1_reverse')} [20]`,
      'prompt_encoder.mlp_head.0.weight [10,10]', 'prompt_encoder.mlp_head.0.bias [10]',
      'prompt_encoder.mlp_head.2.weight [4,10]', 'prompt_encoder.mlp_head.2.bias [4]',
    ]);
    expect(() => lstmPromptEncoder({ virtualTokens: 3, tokenDim: 4, dropout: 0.1 })).toThrow('encoder_dropout 0.1 is not supported');
  });

  test('prefix tuning', () => {
    expect(layout(prefixProjection({ virtualTokens: 3, tokenDim: 4, hidden: 5, outDim: 16 }))).toEqual([
      'prefix_encoder.embedding.weight [3,4]',
      'prefix_encoder.transform.0.weight [5,4]', 'prefix_encoder.transform.0.bias [5]',
      'prefix_encoder.transform.2.weight [16,5]', 'prefix_encoder.transform.2.bias [16]',
    ]);
    expect(layout(prefixEmbedding({ virtualTokens: 3, outDim: 16 }))).toEqual(['prefix_encoder.embedding.weight [3,16]']);
  });

  test('build checks what the input callback returns', () => {
    const enc = mlpPromptEncoder({ virtualTokens: 3, tokenDim: 4, hidden: 5 });
    expect(() => trace((g) => ({ y: enc.build(g, (n, s) => g.input(n, 'float32', n.endsWith('0.bias') ? [6] : s)) }))).toThrow(
      "encoder parameter 'prompt_encoder.mlp_head.0.bias': expected shape [5], got [6]",
    );
  });
});

describe('initial values', () => {
  const enc = lstmPromptEncoder({ virtualTokens: 64, tokenDim: 8, hidden: 6 });

  test('shapes, dtype and PyTorch default bounds', () => {
    const init = initEncoderParams(enc.params, 3);
    expect([...init.keys()]).toEqual(enc.params.map((p) => p.name));
    for (const p of enc.params) {
      const t = init.get(p.name)!;
      expect(t.dtype).toBe('float32');
      expect(t.shape).toEqual(p.shape);
      const values = [...(t.data as Float32Array)];
      const maxAbs = Math.max(...values.map(Math.abs));
      if (p.name.includes('lstm_head')) {
        expect(maxAbs).toBeLessThanOrEqual(Math.fround(1 / Math.sqrt(6))); // nn.LSTM: U(±1/sqrt(hidden))
        expect(maxAbs).toBeGreaterThan(0.5 / Math.sqrt(6));
      } else if (p.name.includes('mlp_head')) {
        const fanIn = 12; // both head linears read 2h = 12 features
        expect(maxAbs).toBeLessThanOrEqual(Math.fround(1 / Math.sqrt(fanIn))); // nn.Linear: U(±1/sqrt(in)), weight and bias
        expect(maxAbs).toBeGreaterThan(0.3 / Math.sqrt(fanIn));
      } else {
        // nn.Embedding: N(0, 1) over 512 draws.
        const mean = values.reduce((a, b) => a + b, 0) / values.length;
        const variance = values.reduce((a, b) => a + (b - mean) ** 2, 0) / values.length;
        expect(Math.abs(mean)).toBeLessThan(0.15);
        expect(Math.abs(variance - 1)).toBeLessThan(0.2);
      }
    }
  });

  test('reproducible from the seed; other seeds differ; float64 on request; zero init', () => {
    const a = initEncoderParams(enc.params, 11);
    const b = initEncoderParams(enc.params, 11);
    const c = initEncoderParams(enc.params, 12);
    for (const p of enc.params) {
      expect([...b.get(p.name)!.data]).toEqual([...a.get(p.name)!.data]);
      expect([...c.get(p.name)!.data]).not.toEqual([...a.get(p.name)!.data]);
    }
    // A parameter's values do not depend on the other parameters (each has its own stream).
    expect([...initEncoderParams(enc.params.slice(3), 11).get(enc.params[3]!.name)!.data]).toEqual([...a.get(enc.params[3]!.name)!.data]);
    const wide = initEncoderParams(enc.params, 11, 'float64').get('prompt_encoder.embedding.weight')!;
    expect(wide.dtype).toBe('float64');
    expect(Math.fround(wide.data[5] as number)).toBe(a.get('prompt_encoder.embedding.weight')!.data[5] as number);

    const zero = prefixProjection({ virtualTokens: 2, tokenDim: 4, outDim: 8, initWeights: 'zero' });
    const zi = initEncoderParams(zero.params, 1);
    expect([...zi.get('prefix_encoder.transform.2.weight')!.data].every((v) => v === 0)).toBe(true);
    expect([...zi.get('prefix_encoder.transform.2.bias')!.data].every((v) => v === 0)).toBe(true);
    expect([...zi.get('prefix_encoder.transform.0.weight')!.data].some((v) => v !== 0)).toBe(true);
    expect([...initEncoderParams(prefixEmbedding({ virtualTokens: 2, outDim: 8, initWeights: 'zero' }).params, 1).get('prefix_encoder.embedding.weight')!.data].every((v) => v === 0)).toBe(true);
  });
});
