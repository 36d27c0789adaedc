/// <reference lib="dom" />
/**
 * The page: loads stories260k and data.txt from its server, shows a greedy continuation of a fixed prompt, fine-tunes
 * LoRA on onnxruntime-web (WebGPU when the browser has an adapter, wasm otherwise), draws the loss after every step,
 * and shows the continuation again. Query: `steps` (default 60), `backend` (auto | wasm | webgpu), `lines` (of
 * data.txt to train on, default 40: see RECIPE), `lr`, `threads`.
 * Progress is mirrored in `globalThis.tuneforgeFinetune` (PageState) for the test.
 */
import * as ort from 'onnxruntime-web';
import { encodeText } from '../../core/data/encode.ts';
import { lineChartSvg } from '../../core/report/chart.ts';
import { ortWebRunner, type OrtWebBackend } from '../../runners/ort-web.ts';
import { batchAt, packLines, pageTokenizer } from './data.ts';
import { generateText, loraTrainer, RECIPE, setupLora } from './lora-step.ts';
import { modelFromBytes } from './model.ts';

export interface PageState {
  phase: 'loading' | 'generating' | 'compiling' | 'training' | 'done' | 'error';
  backend?: OrtWebBackend;
  threads?: number;
  steps: number;
  /** Loss of each step, before its update. */
  losses: number[];
  /** Points on the chart after each step's redraw, read back from the SVG. */
  drawn: number[];
  before?: string;
  after?: string;
  stepsPerSecond?: number;
  tokensPerSecond?: number;
  /** Seconds: load (fetch + parse), compile (the training step's session), train (the steps). */
  seconds: Record<string, number>;
  error?: string;
}

const query = new URLSearchParams(location.search);
const intParam = (name: string, fallback: number, min: number, max: number): number => {
  const raw = query.get(name);
  const v = raw === null ? fallback : Number(raw);
  if (!Number.isInteger(v) || v < min || v > max) throw new Error(`?${name}=${raw}: expected an integer from ${min} to ${max}`);
  return v;
};

const state: PageState = { phase: 'loading', steps: 0, losses: [], drawn: [], seconds: {} };
(globalThis as unknown as { tuneforgeFinetune: PageState }).tuneforgeFinetune = state;
const $ = (id: string) => document.getElementById(id)!;

function status(text: string, error = false): void {
  $('status').textContent = text;
  $('status').className = error ? 'error' : '';
}

function figures(): void {
  const last = state.losses.at(-1), first = state.losses[0];
  const cells: [string, string][] = [
    ['backend', state.backend ? `${state.backend}${state.backend === 'wasm' ? ` (${state.threads} thread${state.threads === 1 ? '' : 's'})` : ''}` : '…'],
    ['step', `${state.losses.length} / ${state.steps}`],
    ['loss', first === undefined ? '…' : `${first.toFixed(3)} → ${last!.toFixed(3)}`],
    ['speed', state.stepsPerSecond === undefined ? '…' : `${state.stepsPerSecond.toFixed(2)} steps/s, ${Math.round(state.tokensPerSecond!)} tok/s`],
  ];
  $('figures').innerHTML = cells.map(([k, v]) => `<div><span>${k}</span> ${v}</div>`).join('');
}

/** Redraws the chart; returns how many points it drew. */
function drawLoss(): number {
  $('chart').innerHTML = lineChartSvg({
    title: 'training loss', xLabel: 'step', yLabel: 'cross-entropy', width: 720, height: 340,
    series: [{ name: 'train loss', points: state.losses.map((l, i) => [i + 1, l] as const), markers: state.steps <= 60 }],
  });
  const d = $('chart').querySelector('g.series path')?.getAttribute('d') ?? '';
  figures();
  return (d.match(/[ML]/g) ?? []).length;
}

async function fetchOk(path: string): Promise<Response> {
  const r = await fetch(path);
  if (!r.ok) throw new Error(`GET ${path}: ${r.status} ${r.statusText}`);
  return r;
}

async function pickBackend(asked: string): Promise<OrtWebBackend> {
  const gpu = (navigator as Navigator & { gpu?: { requestAdapter(): Promise<unknown> } }).gpu;
  const adapter = gpu ? await gpu.requestAdapter().catch(() => null) : null;
  if (asked === 'wasm') return 'wasm';
  if (asked === 'webgpu' && !adapter) throw new Error('?backend=webgpu: this browser has no WebGPU adapter (navigator.gpu.requestAdapter() gave none)');
  if (asked !== 'webgpu' && asked !== 'auto') throw new Error(`?backend=${asked}: expected auto, wasm or webgpu`);
  return adapter ? 'webgpu' : 'wasm';
}

const seconds = (t0: number) => (performance.now() - t0) / 1000;
const nextFrame = () => new Promise((r) => setTimeout(r, 0)); // lets the browser paint the chart between steps

async function run(): Promise<void> {
  state.steps = intParam('steps', 60, 1, 10_000);
  const lines = intParam('lines', RECIPE.lines, 1, 100_000);
  const lr = query.has('lr') ? Number(query.get('lr')) : RECIPE.lr;
  if (!(lr > 0 && lr < 1)) throw new Error(`?lr=${query.get('lr')}: expected a number between 0 and 1`);
  // wasm threads need a cross-origin-isolated page (the server sends COOP + COEP). Default: onnxruntime-web's own
  // choice, half the cores (at most 4); on this 2-core machine, loaded, one thread ran faster than two.
  const threads = query.has('threads') ? intParam('threads', 1, 1, 64) : undefined;
  state.backend = await pickBackend(query.get('backend') ?? 'auto');
  const runner = ortWebRunner({ ort, backend: state.backend, ...(threads ? { numThreads: threads } : {}) });
  figures();

  status('loading stories260k and data.txt…');
  let t0 = performance.now();
  const [configJson, tokenizerJson, weightBytes, text] = await Promise.all([
    fetchOk('/model/config.json').then((r) => r.json()),
    fetchOk('/model/tokenizer.json').then((r) => r.json()),
    fetchOk('/model/model.safetensors').then((r) => r.arrayBuffer()),
    fetchOk('/data.txt').then((r) => r.text()),
  ]);
  const { config, weights } = modelFromBytes(configJson, new Uint8Array(weightBytes));
  const tok = pageTokenizer(tokenizerJson as Record<string, unknown>, config);
  const rows = packLines(tok, text, RECIPE.seq, lines);
  const model = await setupLora(config, weights, tok);
  state.seconds.load = seconds(t0);
  $('recipe').innerHTML = `LoRA r ${RECIPE.r}, α ${RECIPE.alpha}, ${RECIPE.targets} (${model.trainable.length} tensors); AdamW lr ${lr}; `
    + `batches of ${RECIPE.batch} × ${RECIPE.seq} tokens from the first ${lines} lines of <code>data.txt</code> (${rows.length} rows); `
    + `prompt <code>${RECIPE.prompt}</code>, ${RECIPE.maxNewTokens} tokens, greedy.`;

  const promptIds = encodeText(tok, RECIPE.prompt);
  state.phase = 'generating';
  status('generating before training…');
  state.before = await generateText(model, weights, tok, promptIds, { maxNewTokens: RECIPE.maxNewTokens, runner });
  $('before').textContent = state.before;
  if (state.backend === 'wasm') state.threads = Number(ort.env.wasm.numThreads ?? 1); // settled by the first session

  state.phase = 'compiling';
  status(`compiling the training step for ${state.backend}…`);
  t0 = performance.now();
  const trainer = await loraTrainer(model, weights, { B: RECIPE.batch, T: RECIPE.seq, lr, runner });
  state.seconds.compile = seconds(t0);

  state.phase = 'training';
  drawLoss();
  t0 = performance.now();
  for (let step = 0; step < state.steps; step++) {
    status(`training: step ${step + 1} of ${state.steps}`);
    state.losses.push(await trainer.step(batchAt(rows, step, RECIPE.batch, tok.padId ?? 0)));
    state.stepsPerSecond = (step + 1) / seconds(t0);
    state.tokensPerSecond = state.stepsPerSecond * RECIPE.batch * RECIPE.seq;
    state.drawn.push(drawLoss());
    await nextFrame();
  }
  state.seconds.train = seconds(t0);
  await trainer.release();

  state.phase = 'generating';
  status('generating after training…');
  state.after = await generateText(model, weights, tok, promptIds, { maxNewTokens: RECIPE.maxNewTokens, runner });
  $('after').textContent = state.after;
  state.phase = 'done';
  status(`done: ${state.steps} steps in ${state.seconds.train.toFixed(1)} s on ${state.backend}`);
  figures();
}

run().catch((e: unknown) => {
  state.phase = 'error';
  state.error = e instanceof Error ? e.message : String(e);
  status(`error: ${state.error}`, true);
});
