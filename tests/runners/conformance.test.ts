/**
 * One suite, every runner on this machine: each case (tests/runners/cases.ts) runs on each available runner and is
 * compared with onnxruntime-node on the CPU, tensor by tensor (max |a - b| / max |b|). Runners that cannot run here
 * are skipped with the reason. The figures are printed at the end (docs/runners.md quotes them).
 */
import { afterAll, describe, expect, test } from 'bun:test';
import { AdamW } from '../../core/optim/adamw.ts';
import { gradName } from '../../core/autodiff/vjp.ts';
import type { HostTensor } from '../../core/ir/host.ts';
import type { FallbackReport } from '../../runners/ort-web.ts';
import { formatPlacedNode } from '../../runners/ort-web-placement.ts';
import { compareResults, CONFORMANCE_RUNNERS, maxRelError, runCase, type CaseResult, type ConformanceCase, type ConformanceRunner } from '../../runners/conformance.ts';
import { ADAMW, adamwCase, fusedClipCase, loraCase, storiesMissing, tableCases, tinyAdamwCase } from './cases.ts';
import { BROWSER_RUNNERS, browserRunner, pageInfo, type OrtWebBuild } from './browser/driver.ts';
import { DENO_RUNNER } from './deno/driver.ts';

// The registry's runners, plus those driven from this test (they need playwright-core, a dev dependency, or a Deno).
const RUNNERS: ConformanceRunner[] = [...CONFORMANCE_RUNNERS, DENO_RUNNER, ...BROWSER_RUNNERS];
const [REFERENCE, ...OTHERS] = RUNNERS as [ConformanceRunner, ...ConformanceRunner[]];

const missing = storiesMissing();
if (missing) console.warn(`conformance: skipping the stories260k cases: ${missing}`);
const adamw = missing ? undefined : await adamwCase();
const CASES: ConformanceCase[] = [...await tableCases(), await tinyAdamwCase(), await fusedClipCase(), ...(missing ? [] : [await loraCase(), adamw!])];
const AVAILABLE = await Promise.all(OTHERS.map((r) => r.available()));

const references = new Map<string, Promise<CaseResult>>();
const reference = async (c: ConformanceCase) => {
  if (!references.has(c.name)) references.set(c.name, runCase(await REFERENCE.make({ feedback: c.feedback }), c));
  return references.get(c.name)!;
};

/** Runner -> case -> worst relative error, printed as the suite's figures. */
const figures = new Map<string, Map<string, { worst: number; where: string; ms: number }>>();

describe(`reference: ${REFERENCE.name}`, () => {
  test.skipIf(!adamw)('the fused AdamW graph is core/optim AdamW (two steps from the reference gradients)', async () => {
    const c = adamw!;
    const ref = await reference(c);
    const opt = new AdamW(ADAMW);
    const params = new Map([...c.initial].map(([n, t]) => [n, Float32Array.from(t.data as Float32Array)]));
    for (const round of ref.rounds) {
      for (const [n, p] of params) opt.update(n, p, round[gradName(n)]!.data as Float32Array, ADAMW.lr, c.initial.get(n)!.shape.length > 1 ? ADAMW.weightDecay : 0);
    }
    let worst = 0;
    for (const [n, p] of params) worst = Math.max(worst, maxRelError(ref.final[n]!, { dtype: 'float32', shape: [p.length], data: p }));
    console.log(`fused AdamW vs core/optim AdamW after ${ref.rounds.length} steps: worst parameter relative error ${worst.toExponential(2)}`);
    expect(worst).toBeLessThan(1e-5);
  }, 120_000);
});

OTHERS.forEach((runner, i) => {
  const why = AVAILABLE[i]!;
  if (why !== true) console.warn(`conformance: skipping ${runner.name}: ${why}`);
  describe.skipIf(why !== true)(runner.name, () => {
    for (const c of CASES) {
      const skip = runner.skip?.(c), known = runner.known?.(c);
      test.skipIf(skip !== undefined)(known ? `${c.name} (known defect: expected to disagree)` : c.name, async () => {
        const ref = await reference(c);
        const t0 = performance.now();
        const got = await runCase(await runner.make({ feedback: c.feedback }), c);
        const ms = performance.now() - t0;
        const { worst, where, problems } = compareResults(got, ref);
        if (!figures.has(runner.name)) figures.set(runner.name, new Map());
        if (!known) figures.get(runner.name)!.set(c.name, { worst, where, ms });
        expect(problems).toEqual([]);
        if (known) {
          if (worst <= c.tol) throw new Error(`${runner.name} / ${c.name} now agrees with the reference: the known defect is gone (${known}); remove its entry`);
          return;
        }
        if (!(worst <= c.tol)) throw new Error(`${runner.name} / ${c.name}: ${where} differs by ${worst.toExponential(2)} (relative), tolerance ${c.tol}`);
      }, 120_000);
    }
  });
});

const nodeWebgpu = OTHERS.findIndex((r) => r.name === 'onnxruntime-node webgpu');
test.skipIf(nodeWebgpu < 0 || AVAILABLE[nodeWebgpu] === true)('onnxruntime-node webgpu without an adapter: the error says why and what to install', () => {
  const why = String(AVAILABLE[nodeWebgpu]);
  expect(why).toContain("WebGPU provider could not be created");
  expect(why).toContain('apt-get install libvulkan1');
});

const webgpuIndex = OTHERS.indexOf(BROWSER_RUNNERS[1]!);
describe.skipIf(webgpuIndex < 0 || AVAILABLE[webgpuIndex] !== true)('browser WebGPU specifics', () => {
  const describeNodes = (r: FallbackReport) => r.cpuNodes.map(formatPlacedNode).join('\n  ');

  const report = async (c: ConformanceCase, build: OrtWebBuild = 'jsep') => {
    const session = await browserRunner('webgpu', { cpuFallback: true }, build).load(c.step);
    const r = await session.fallbackReport();
    await session.release();
    console.log(`fallbackReport (${build}, ${c.name}): ${r.summary}${r.cpuNodes.length ? `\n  ${describeNodes(r)}` : ''}`);
    return r;
  };

  // A training step's every node has a WebGPU kernel: onnxruntime accepts it with CPU fallback disabled, in either
  // build of onnxruntime-web (JSEP, and the native provider of onnxruntime-web/webgpu).
  for (const build of ['jsep', 'native'] as const) {
    for (const name of ['cross-entropy with ignore index', 'gather rows', 'stories260k LoRA gradient', 'stories260k full fine-tuning']) {
      test.skipIf(!CASES.some((x) => x.name.startsWith(name)))(`fallbackReport (${build}): every node of '${name}' runs on WebGPU`, async () => {
        const r = await report(CASES.find((x) => x.name.startsWith(name))!, build);
        expect(describeNodes(r)).toBe('');
        expect(r.allOnDevice).toBe(true);
      }, 120_000);
    }
  }

  test('fallbackReport names the nodes onnxruntime puts on the CPU, with their IR equations', async () => {
    const c = CASES.find((x) => x.name === 'two int64 comparisons')!;
    const session = await browserRunner('webgpu', { cpuFallback: true }).load(c.step);
    const report = await session.fallbackReport();
    await session.release();
    console.log(`fallbackReport (${c.name}): ${report.summary}\n  ${describeNodes(report)}`);
    expect(report.allOnDevice).toBe(false);
    expect(report.refusal).toContain('fallback');
    expect(report.placements).toBe('captured');
    expect(report.counts.CPUExecutionProvider).toBe(report.cpuNodes.length);
    // The two comparisons of int64 labels (no int64 kernel on WebGPU), each traced to its equation.
    expect(report.cpuNodes.map((n) => n.opType)).toEqual(expect.arrayContaining(['LessOrEqual', 'Equal']));
    for (const n of report.cpuNodes.filter((x) => x.opType !== 'Cast')) expect(n.origin).toMatch(/^equation \d+: (less_equal|equal)\(int64/);
  }, 60_000);

  test('with CPU fallback disabled, a step with a node off the GPU is refused, naming the node', async () => {
    const c = CASES.find((x) => x.name === 'two int64 comparisons')!;
    const error = await browserRunner('webgpu').load(c.step).then(() => undefined, (e: Error) => e.message);
    expect(error).toContain('CPU fallback disabled');
    expect(error).toMatch(/LessOrEqual less_equal_\d+ <- equation \d+: less_equal\(int64/);
  }, 60_000);

  test('fed-back outputs stay on the GPU: omitted inputs are served from the held buffers', async () => {
    const c = CASES.find((x) => x.name.startsWith('linear regression'))!;
    const session = await browserRunner('webgpu', { feedback: { ...c.feedback } }).load(c.step);
    try {
      const first = await session.run(c.rounds[0]!);
      expect(Object.keys(first)).not.toContain('new:w'); // held, not returned
      await session.run(c.rounds[1]!); // no 'w', 'm:w', ...: they come from the held GPU buffers
      const w: HostTensor = await session.readHeld('w');
      const ref = await reference(c);
      expect(w.shape).toEqual([4, 6]);
      // After two of the reference's three steps the held w differs from its final value, and from the initial one.
      expect(maxRelError(w, c.rounds[0]!.w!)).toBeGreaterThan(1e-4);
      expect(maxRelError(w, ref.final.w!)).toBeGreaterThan(1e-4);
    } finally {
      await session.release();
    }
  }, 60_000);
});

afterAll(async () => {
  const info = BROWSER_RUNNERS.length && AVAILABLE[OTHERS.indexOf(BROWSER_RUNNERS[0]!)] === true ? await pageInfo() : undefined;
  const lines = [...figures].filter(([, cases]) => cases.size > 0).map(([runner, cases]) => {
    const all = [...cases.values()];
    const worst = all.reduce((a, b) => (b.worst > a.worst ? b : a), { worst: 0, where: '-', ms: 0 });
    const kind = (filter: (name: string) => boolean) => {
      const errs = [...cases].filter(([n]) => filter(n)).map(([, f]) => f.worst);
      return errs.length ? Math.max(...errs).toExponential(1) : '-';
    };
    const seconds = (all.reduce((s, f) => s + f.ms, 0) / 1000).toFixed(1);
    return `${runner.padEnd(48)} ${String(cases.size).padStart(2)} cases ${seconds.padStart(5)} s  small ${kind((n) => !n.startsWith('stories'))}  LoRA ${kind((n) => n.includes('LoRA'))}  AdamW ${kind((n) => n.includes('full fine-tuning'))}  (worst: ${worst.where})`;
  });
  if (lines.length) console.log(`conformance vs ${REFERENCE.name} (max relative error per tensor):\n${lines.join('\n')}${info ? `\nchromium page: ${JSON.stringify(info)}` : ''}`);
  for (const r of new Set(RUNNERS)) await r.close?.();
});
