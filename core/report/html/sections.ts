/**
 * The HTML of the report's text sections: summary figures, the memory plan table, the config and the generations.
 * Every string that comes from a run's files goes through `esc`, so a config value or a generation that contains
 * markup shows as text.
 */
import { formatCount, formatDuration, formatField, formatNumber } from '../format.ts';
import { escapeXml as esc } from '../svg.ts';
import type { RunReportData, RunSample } from './data.ts';
import type { RunSummary } from './summary.ts';

export { esc };

/** A run with its derived figures. */
export interface SectionRun {
  run: RunReportData;
  summary: RunSummary;
}

export const NOT_RECORDED = '<p class="missing">not recorded</p>';
const dash = '–';

const mib = (v: number | undefined): string => (v === undefined || !Number.isFinite(v) ? dash : `${formatNumber(Math.round(v * 10) / 10)} MiB`);
const signed = (s: string, v: number): string => (v > 0 ? `+${s}` : s);
const pct = (v: number | undefined): string => (v === undefined ? dash : `${signed(v.toFixed(1), v)}%`);
const count = (v: number | undefined): string => (v === undefined ? dash : formatCount(v));
const evalValue = (key: string, v: number | undefined): string => (v === undefined ? dash : formatField(key, v));

/** The steps reached, of the planned ones, and whether early stopping ended the run. */
function stepsText(s: RunSummary): string {
  const of = s.totalSteps !== undefined && s.totalSteps !== s.lastStep ? ` of ${formatCount(s.totalSteps)}` : '';
  return `${count(s.lastStep)}${of}${s.stoppedEarly ? ' (stopped early)' : ''}`;
}

/** `label: value` pairs as a definition list. */
const facts = (pairs: readonly [string, string][]): string => `<dl class="facts">${pairs.map(([k, v]) => `<div><dt>${esc(k)}</dt><dd>${esc(v)}</dd></div>`).join('')}</dl>\n`;

/** One run's summary: totals, then baseline against final for every evaluation key. */
export function summaryHtml({ run, summary: s }: SectionRun): string {
  const out = [
    facts([
      ['steps', stepsText(s)],
      ['tokens', count(s.tokens)],
      ['wall time', s.wallMs === undefined ? dash : formatDuration(s.wallMs)],
      ['best step', s.bestStep === undefined ? dash : formatCount(s.bestStep)],
      ['predicted peak', mib(s.predictedPeakMb)],
      ['measured peak', mib(s.measuredPeakMb)],
      ['plan error', pct(s.peakErrorPct)],
    ]),
  ];
  if (run.metrics.length === 0) out.push('<p class="missing">metrics: not recorded (no metrics.jsonl)</p>\n');
  if (s.evalKeys.length === 0) out.push('<p class="missing">evaluation: not recorded</p>\n');
  else {
    const finalHead = s.final ? `final (step ${formatCount(s.final.step)}${s.bestStep !== undefined ? `, best checkpoint: step ${formatCount(s.bestStep)}` : ''})` : 'final';
    const rows = s.evalKeys.map((k) => {
      const b = s.baseline?.values.get(k);
      const f = s.final?.values.get(k);
      const change = b !== undefined && f !== undefined ? signed(formatField(k, f - b), f - b) : dash;
      return `<tr><th scope="row">${esc(k)}</th><td>${esc(evalValue(k, b))}</td><td>${esc(evalValue(k, f))}</td><td>${esc(change)}</td></tr>`;
    });
    out.push(
      `<table class="evals"><thead><tr><th>metric</th><th>baseline (step 0)</th><th>${esc(finalHead)}</th><th>change</th></tr></thead>`,
      `<tbody>${rows.join('\n')}</tbody></table>\n`,
    );
  }
  return out.join('') + problemsHtml(run);
}

/** Several runs' summaries: one row per run, one column per evaluation key (baseline → final). */
export function summaryTableHtml(runs: readonly SectionRun[]): string {
  const keys = [...new Set(runs.flatMap((r) => r.summary.evalKeys))];
  const head = ['run', 'steps', 'tokens', 'wall time', 'best step', ...keys.map((k) => `${k} (baseline → final)`), 'predicted peak', 'measured peak', 'plan error'];
  const rows = runs.map(({ run, summary: s }) => {
    const cells = [
      stepsText(s),
      count(s.tokens),
      s.wallMs === undefined ? dash : formatDuration(s.wallMs),
      s.bestStep === undefined ? dash : formatCount(s.bestStep),
      ...keys.map((k) => `${evalValue(k, s.baseline?.values.get(k))} → ${evalValue(k, s.final?.values.get(k))}`),
      mib(s.predictedPeakMb),
      mib(s.measuredPeakMb),
      pct(s.peakErrorPct),
    ];
    return `<tr><th scope="row">${esc(run.name)}</th>${cells.map((c) => `<td>${esc(c)}</td>`).join('')}</tr>`;
  });
  const problems = runs.map(({ run }) => problemsHtml(run, `${run.name}: `)).join('');
  return `<div class="scroll"><table class="runs"><thead><tr>${head.map((h) => `<th>${esc(h)}</th>`).join('')}</tr></thead>\n<tbody>${rows.join('\n')}</tbody></table></div>\n${problems}`;
}

/** Files that were there but unreadable, so a reader knows why a section is empty. */
function problemsHtml(run: RunReportData, prefix = ''): string {
  return run.problems.map((p) => `<p class="problem">${esc(prefix)}could not read ${esc(p)}</p>\n`).join('');
}

/** The memory plan as a table (component, MiB, share, note), closed by the predicted total and the measured peak. */
export function planTableHtml({ run, summary: s }: SectionRun): string {
  const p = run.plan;
  if (!p) return `<p class="missing">memory plan: not recorded (no plan.json)</p>\n${facts([['measured peak', mib(s.measuredPeakMb)]])}`;
  const head = facts([
    ['model', p.model || dash],
    ['parameters', `${count(p.parameters)} (${count(p.trainableParameters)} trainable)`],
    ['micro-batch', `${count(p.dims.B)} × ${count(p.dims.T)} tokens, ${count(p.accumulationSteps)} accumulation step(s)`],
    ['checkpointing', p.checkpointing ? 'on' : 'off'],
  ]);
  const rows = p.items.map((i) => {
    const share = p.totalBytes > 0 ? `${((100 * i.bytes) / p.totalBytes).toFixed(1)}%` : dash;
    return `<tr><td>${esc(i.component)}</td><td class="num">${esc(mib(i.bytes / 2 ** 20))}</td><td class="num">${share}</td><td>${esc(i.note ?? '')}</td></tr>`;
  });
  rows.push(`<tr class="total"><td>predicted peak (total)</td><td class="num">${esc(mib(p.totalBytes / 2 ** 20))}</td><td class="num">100%</td><td></td></tr>`);
  rows.push(`<tr class="measured"><td>measured peak</td><td class="num">${esc(mib(s.measuredPeakMb))}</td><td></td><td>error of the plan ${esc(pct(s.peakErrorPct))}</td></tr>`);
  return `${head}<table class="plan"><thead><tr><th>component</th><th>MiB</th><th>share</th><th>note</th></tr></thead>\n<tbody>${rows.join('\n')}</tbody></table>\n`;
}

/** The resolved config, pretty-printed. */
export function configHtml(run: RunReportData): string {
  if (run.config === undefined) return '<p class="missing">config: not recorded (no config.json)</p>\n';
  return `<pre class="config">${esc(JSON.stringify(run.config, null, 2))}</pre>\n`;
}

/** Pairs the generations by prompt (in first-seen order), so each prompt shows its before and after side by side. */
function pairByPrompt(before: readonly RunSample[], after: readonly RunSample[]): { prompt: string; before?: string; after?: string }[] {
  const queue = (list: readonly RunSample[]) => {
    const m = new Map<string, string[]>();
    for (const s of list) m.set(s.prompt, [...(m.get(s.prompt) ?? []), s.completion]);
    return m;
  };
  const b = queue(before);
  const a = queue(after);
  const out: { prompt: string; before?: string; after?: string }[] = [];
  for (const prompt of new Set([...before, ...after].map((s) => s.prompt))) {
    const bs = b.get(prompt) ?? [];
    const as = a.get(prompt) ?? [];
    for (let i = 0; i < Math.max(bs.length, as.length); i++) out.push({ prompt, before: bs[i], after: as[i] });
  }
  return out;
}

/** Greedy generations of the base model and of the trained one, side by side per prompt. */
export function samplesHtml(run: RunReportData): string {
  const s = run.samples;
  if (!s || s.before.length + s.after.length === 0) return '<p class="missing">generations: not recorded (no samples.json)</p>\n';
  const cell = (text: string | undefined) => (text === undefined ? '<div class="gen missing">not recorded</div>' : `<div class="gen">${esc(text)}</div>`);
  const items = pairByPrompt(s.before, s.after).map(
    (p) => `<div class="sample"><div class="prompt">${esc(p.prompt)}</div><div class="pair"><div><h4>before</h4>${cell(p.before)}</div><div><h4>after</h4>${cell(p.after)}</div></div></div>`,
  );
  return `<div class="samples">${items.join('\n')}</div>\n`;
}
