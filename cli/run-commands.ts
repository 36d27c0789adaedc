/** `train`, `eval` and `export`: the commands that work from a config file. */
import { readFileSync } from 'node:fs';
import { loadConfigFile } from '../core/train/load-config.ts';
import { sidecar } from '../runners/sidecar.ts';
import type { TrainConfig } from '../core/train/config.ts';
import { train } from '../core/train/trainer.ts';
import { evaluateCommand, exportCommand } from '../core/train/run.ts';
import { BUILTIN_PLUGINS } from '../plugins/index.ts';
import { readAdapter } from '../plugins/peft/read.ts';
import { createPlanner, fitToBudget, formatPlan, parseBudget } from '../core/memory/index.ts';
import { loadPlanData, plannerForData } from '../core/train/plan-run.ts';

export interface RunCommandOptions {
  config: string;
  steps?: number;
  output?: string;
  seed?: number;
  resume?: boolean;
  /** A PEFT adapter folder the run starts from (train continues it; eval scores it). */
  adapter?: string;
}

const log = (line: string) => console.error(line);

/** The config file with the command line's overrides, and its plugins (an `--adapter` folder's in place of the config's). */
export async function load(o: RunCommandOptions): Promise<{ config: TrainConfig; plugins: Awaited<ReturnType<typeof loadConfigFile>>['plugins'] }> {
  const { config, plugins } = await loadConfigFile(o.config, BUILTIN_PLUGINS);
  if (o.steps !== undefined) config.train.steps = o.steps;
  if (o.output !== undefined) config.output = o.output;
  if (o.seed !== undefined) config.seed = o.seed;
  if (!o.adapter) return { config, plugins };
  // The adapter's plugin takes the place of the config's plugin of the same technique: the file fixes its shape.
  const adapter = await readAdapter(o.adapter);
  const replaced = plugins.filter((p) => p.name === adapter.plugin.name);
  if (replaced.length) log(`--adapter: ${adapter.peftType} from ${o.adapter} replaces the config's ${adapter.plugin.name} options`);
  else log(`--adapter: ${adapter.peftType} from ${o.adapter}`);
  return { config, plugins: [...plugins.filter((p) => p.name !== adapter.plugin.name), adapter.plugin] };
}

export interface TrainCommandOptions extends RunCommandOptions {
  /**
   * Run the steps on a `tuneforge sidecar` (docs/sidecar.md): its URL, and the file holding its token
   * (default: TUNEFORGE_SIDECAR_TOKEN).
   */
  sidecar?: { url: string; tokenFile?: string };
}

export async function trainCommand(o: TrainCommandOptions, env: Record<string, string | undefined> = process.env): Promise<void> {
  const runner = o.sidecar ? await sidecarRunner(o.sidecar, env) : undefined;
  const { config, plugins } = await load(o);
  log(`run folder: ${config.output}`);
  if (runner) log(`steps run on the sidecar at ${runner.url} (${(await runner.info()).provider} provider)`);
  const result = await train({ config, plugins, resume: o.resume ?? true, log, ...(runner ? { runner } : {}) });
  const figures = Object.entries(result.metrics).map(([k, v]) => `${k} ${Number.isInteger(v) ? v : v.toFixed(4)}`).join(', ');
  console.log(`trained ${result.step} steps; ${figures}`);
  console.log(`metrics: ${config.output}/metrics.jsonl, report: ${config.output}/report.html`);
}

/** The sidecar runner of `train --sidecar`, its token read from the file or the environment; checked reachable. */
async function sidecarRunner(o: { url: string; tokenFile?: string }, env: Record<string, string | undefined>) {
  let url: URL;
  try {
    url = new URL(o.url);
  } catch {
    throw new Error(`--sidecar: '${o.url}' is not a URL; write e.g. http://gpu-box:7070`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error(`--sidecar: '${o.url}' is not an http:// or https:// URL`);
  const token = o.tokenFile !== undefined ? readFileSync(o.tokenFile, 'utf8').split('\n')[0]!.trim() : env.TUNEFORGE_SIDECAR_TOKEN?.trim();
  if (!token) throw new Error(o.tokenFile !== undefined ? `--sidecar-token-file ${o.tokenFile} is empty` : '--sidecar: give the sidecar\'s token with --sidecar-token-file FILE or TUNEFORGE_SIDECAR_TOKEN');
  const runner = sidecar(o.url.replace(/\/+$/, ''), { token });
  await runner.info(); // an unreachable sidecar or a wrong token fails here, before the data and the model load
  return runner;
}

export async function evalCommand(o: RunCommandOptions): Promise<void> {
  const { config, plugins } = await load(o);
  const metrics = await evaluateCommand(config, plugins, log);
  if (Object.keys(metrics).length === 0) console.log('nothing to evaluate: give data.eval, data.evalFraction or task.choice.evalFile');
  for (const [k, v] of Object.entries(metrics)) console.log(`${k} ${v.toFixed(4)}`);
}

export async function exportRunCommand(o: RunCommandOptions): Promise<void> {
  const { config, plugins } = await load(o);
  const written = await exportCommand(config, plugins, log);
  for (const w of written) console.log(w);
}

export interface PlanCommandOptions extends RunCommandOptions {
  json?: boolean;
  /** Skip the pass over the data: plan every sequence at data.maxLength (a worst case, and faster). */
  noData?: boolean;
  microBatchSize?: number;
  checkpointing?: boolean;
}

/** Predicts the run's peak memory (and fits it to memory.budget when the config sets one). */
export async function planCommand(o: PlanCommandOptions): Promise<void> {
  const { config, plugins } = await load(o);
  // A fast pass over the data (tokenising it, as the run will) sizes the plan to the lengths the data has.
  const planner = o.noData ? await createPlanner(config, plugins) : await plannerForData(config, plugins, await loadPlanData(config, log));
  const plan = config.memory.budget !== undefined && o.microBatchSize === undefined && o.checkpointing === undefined
    ? fitToBudget(planner, config.train.batchSize, parseBudget(config.memory.budget))
    : planner.plan({ microBatchSize: o.microBatchSize, checkpointing: o.checkpointing });
  if (o.json) console.log(JSON.stringify(plan, null, 2));
  else console.log(formatPlan(plan));
}
