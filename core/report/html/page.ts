/**
 * The report page: one self-contained HTML document (inline CSS, inline SVG, no script), readable offline, by mail
 * attachment or from a CI artifact. A Content-Security-Policy forbids every fetch and every script, so the page
 * cannot reach the network even if some run's data slipped past the escaping.
 */
import { curveCharts, inlineChart, type ChartRun } from './charts.ts';
import type { RunReportData } from './data.ts';
import { planChartSvg } from './plan-chart.ts';
import { configHtml, esc, planTableHtml, samplesHtml, summaryHtml, summaryTableHtml } from './sections.ts';
import { summarizeRun } from './summary.ts';

const CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:";

const CSS = `
:root { color-scheme: light; --fg: #1b1b1b; --muted: #666; --line: #ddd; --soft: #f6f7f9; }
* { box-sizing: border-box; }
body { margin: 0 auto; max-width: 1500px; padding: 24px 28px 48px; color: var(--fg); background: #fff;
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 18px; margin: 32px 0 12px; border-bottom: 1px solid var(--line); padding-bottom: 4px; }
h3 { font-size: 15px; margin: 20px 0 8px; } h4 { font-size: 12px; margin: 0 0 4px; color: var(--muted); text-transform: uppercase; letter-spacing: .04em; }
.sub, .missing { color: var(--muted); } .problem { color: #a33; }
nav a { margin-right: 14px; color: #0a58a8; text-decoration: none; }
dl.facts { display: flex; flex-wrap: wrap; gap: 10px; margin: 8px 0 16px; }
dl.facts div { background: var(--soft); border: 1px solid var(--line); border-radius: 6px; padding: 6px 12px; min-width: 120px; }
dt { font-size: 12px; color: var(--muted); } dd { margin: 0; font-size: 16px; font-variant-numeric: tabular-nums; }
table { border-collapse: collapse; font-variant-numeric: tabular-nums; margin: 8px 0; }
th, td { border-bottom: 1px solid var(--line); padding: 5px 12px 5px 0; text-align: left; vertical-align: top; }
td.num { text-align: right; } tr.total td, tr.measured td { font-weight: 600; }
.scroll { overflow-x: auto; }
.charts { display: grid; grid-template-columns: repeat(auto-fill, minmax(520px, 1fr)); gap: 16px; }
figure.chart { margin: 0; border: 1px solid var(--line); border-radius: 6px; overflow: hidden; }
figure.chart svg { display: block; width: 100%; height: auto; }
figure.wide { max-width: 900px; }
pre.config { background: var(--soft); border: 1px solid var(--line); border-radius: 6px; padding: 12px; overflow-x: auto; font-size: 12px; }
.sample { border: 1px solid var(--line); border-radius: 6px; margin: 10px 0; padding: 10px 12px; }
.prompt { font-weight: 600; white-space: pre-wrap; margin-bottom: 8px; }
.pair { display: grid; grid-template-columns: 1fr 1fr; gap: 14px; }
.gen { white-space: pre-wrap; background: var(--soft); border-radius: 4px; padding: 6px 8px; font-size: 13px; }
details { border: 1px solid var(--line); border-radius: 6px; padding: 8px 12px; margin: 10px 0; }
summary { cursor: pointer; font-weight: 600; }
@media print { figure.chart { break-inside: avoid; } details { break-inside: avoid; } }
`;

/** A figure holding one inline chart. */
const figure = (svg: string, wide = false): string => `<figure class="chart${wide ? ' wide' : ''}">${svg}</figure>\n`;

/** A titled section. */
const section = (id: string, title: string, body: string): string => `<section id="${id}"><h2>${esc(title)}</h2>\n${body}</section>\n`;

/**
 * Renders the report of one run, or of several overlaid (one series per run in every chart, a summary row per run,
 * each run's config, plan and generations in its own collapsible block). Returns the whole HTML document.
 */
export function renderReport(runs: readonly RunReportData[]): string {
  if (runs.length === 0) throw new Error('renderReport: no runs to report on');
  const all: ChartRun[] = runs.map((run) => ({ run, summary: summarizeRun(run) }));
  const one = all.length === 1 ? all[0] : undefined;
  const title = one ? `tuneforge report: ${one.run.name}` : `tuneforge report: ${all.map((r) => r.run.name).join(' vs ')}`;
  const charts = curveCharts(all).map((c) => figure(c.svg)).join('');
  const plan = figure(inlineChart(planChartSvg(all), 'plan', 'memory plan vs measured peak'), true);

  const body: string[] = [
    `<header><h1>${esc(title)}</h1><p class="sub">${all.map((r) => esc(r.run.dir)).join('<br>')}</p></header>\n`,
    '<nav><a href="#summary">summary</a><a href="#curves">curves</a><a href="#memory-plan">memory plan</a>',
    one ? '<a href="#config">config</a><a href="#samples">generations</a></nav>\n' : '<a href="#runs">runs</a></nav>\n',
    section('summary', 'Summary', one ? summaryHtml(one) : summaryTableHtml(all)),
    section('curves', 'Training curves', `<div class="charts">\n${charts}</div>\n`),
  ];
  if (one) {
    body.push(section('memory-plan', 'Memory plan vs measured', plan + planTableHtml(one)));
    body.push(section('config', 'Config', configHtml(one.run)));
    body.push(section('samples', 'Generations before and after training', samplesHtml(one.run)));
  } else {
    body.push(section('memory-plan', 'Memory plan vs measured', plan));
    const blocks = all.map(
      (r) =>
        `<details><summary>${esc(r.run.name)}</summary>\n<h3>Memory plan</h3>\n${planTableHtml(r)}<h3>Config</h3>\n${configHtml(r.run)}` +
        `<h3>Generations before and after training</h3>\n${samplesHtml(r.run)}</details>\n`,
    );
    body.push(section('runs', 'Runs', blocks.join('')));
  }
  return [
    '<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n',
    '<meta name="viewport" content="width=device-width, initial-scale=1">\n',
    `<meta http-equiv="Content-Security-Policy" content="${CSP}">\n`,
    `<title>${esc(title)}</title>\n<style>${CSS}</style>\n</head>\n<body>\n`,
    ...body,
    '</body>\n</html>\n',
  ].join('');
}
