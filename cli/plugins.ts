/**
 * `tuneforge plugins`: the built-in plugins and the plugin packages installed in the project (packages whose
 * package.json has the `tuneforge-plugin` keyword), each with its options as JSON Schema. A package shows its
 * options when it exports a zod schema as `optionsSchema`.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { z } from 'zod';
import { resolvePackage } from '../core/runtime.ts';
import { BUILTIN_SCHEMAS } from '../plugins/index.ts';

export interface PluginListing {
  name: string;
  source: 'built-in' | 'package';
  version?: string;
  description?: string;
  /** JSON Schema of the options, when known. */
  options?: unknown;
  /** Why the package could not be inspected. */
  problem?: string;
}

const KEYWORD = 'tuneforge-plugin';

const BUILTIN_DESCRIPTIONS: Record<string, string> = {
  full: 'full fine-tuning (every weight, or a chosen subset)',
  lora: 'LoRA: low-rank adapters B·A beside linear layers (PEFT LORA export)',
  lisa: 'LISA: a few decoder layers trained at a time, switched on a schedule',
  nf4: 'QLoRA-NF4: the frozen base in 4 bits, dequantised in the graph',
  int8: '8-bit frozen weights (int8 codes, absmax scale per row or block), dequantised in the graph; LoRA on top',
  zo: 'zeroth-order optimizers (ZO-SGD, -Sign, -MMT, -Cons, ZO-Adam): no backward pass',
  'forward-grad': 'Forward-Grad: gradient estimates from one forward-mode JVP',
  adalora: 'AdaLoRA: SVD-form LoRA with a rank budget allocated during training',
  adapters: 'bottleneck adapters, series or parallel (LLM-Adapters)',
  prefix: 'prefix tuning: trainable key/value slots in every layer',
  prompt: 'prompt tuning: trainable soft-prompt rows',
  'p-tuning': 'P-tuning: soft prompts from an MLP or LSTM encoder',
};

/** package.json files directly under node_modules (and under its @scope folders). */
function packageFolders(nodeModules: string): string[] {
  if (!existsSync(nodeModules)) return [];
  const out: string[] = [];
  for (const entry of readdirSync(nodeModules)) {
    if (entry.startsWith('.')) continue;
    const dir = join(nodeModules, entry);
    if (entry.startsWith('@')) for (const sub of readdirSync(dir)) out.push(join(dir, sub));
    else out.push(dir);
  }
  return out.filter((d) => existsSync(join(d, 'package.json')));
}

const schemaOf = (s: unknown): unknown => (s instanceof z.ZodType ? z.toJSONSchema(s, { io: 'input', unrepresentable: 'any' }) : undefined);

export async function listPlugins(projectDir = process.cwd()): Promise<PluginListing[]> {
  const out: PluginListing[] = Object.entries(BUILTIN_SCHEMAS).map(([name, schema]) => ({ name, source: 'built-in', description: BUILTIN_DESCRIPTIONS[name], options: schemaOf(schema) }));
  for (const dir of packageFolders(join(projectDir, 'node_modules'))) {
    const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name: string; version?: string; description?: string; keywords?: string[] };
    if (!pkg.keywords?.includes(KEYWORD)) continue;
    const listing: PluginListing = { name: pkg.name, source: 'package', version: pkg.version, description: pkg.description };
    try {
      const mod = (await import(pathToFileURL(resolvePackage(pkg.name, projectDir)).href)) as Record<string, unknown>;
      if (typeof (mod.default ?? mod.plugin) !== 'function') listing.problem = 'no default export (or `plugin` export) that is a plugin factory';
      listing.options = schemaOf(mod.optionsSchema);
    } catch (e) {
      listing.problem = `cannot be loaded: ${(e as Error).message.split('\n')[0]}`;
    }
    out.push(listing);
  }
  return out;
}

/** One line per option: `r: integer (default 8) — rank of B·A`. */
function optionLines(schema: unknown): string[] {
  const props = (schema as { properties?: Record<string, { type?: string; default?: unknown; description?: string; anyOf?: unknown[] }> } | undefined)?.properties;
  if (!props) return [];
  return Object.entries(props).map(([k, p]) => {
    const type = p.type ?? (p.anyOf ? 'one of several' : 'any');
    const dflt = p.default !== undefined ? ` (default ${JSON.stringify(p.default)})` : '';
    return `    ${k}: ${type}${dflt}${p.description ? ` — ${p.description}` : ''}`;
  });
}

export async function pluginsCommand(o: { json?: boolean; verbose?: boolean }): Promise<void> {
  const all = await listPlugins();
  if (o.json) {
    console.log(JSON.stringify(all, null, 2));
    return;
  }
  for (const source of ['built-in', 'package'] as const) {
    const group = all.filter((p) => p.source === source);
    console.log(source === 'built-in' ? 'built-in plugins:' : group.length ? 'installed plugin packages (keyword tuneforge-plugin):' : 'installed plugin packages: none (packages with the tuneforge-plugin keyword appear here)');
    for (const p of group) {
      console.log(`  ${p.name}${p.version ? `@${p.version}` : ''}${p.description ? `: ${p.description}` : ''}${p.problem ? ` [${p.problem}]` : ''}`);
      if (o.verbose || source === 'package') for (const l of optionLines(p.options)) console.log(l);
    }
  }
  if (!o.verbose) console.log('(--verbose: every option of the built-ins; --json: the schemas)');
}
