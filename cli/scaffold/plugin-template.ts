/**
 * The files `tuneforge new plugin <name>` writes. The example technique is IA³ (learned per-channel scales on the
 * outputs of chosen linear layers, started at 1): small enough to read in a minute, and it uses the hooks most
 * techniques need (model:linear, params:init, params:trainable, export:merge).
 */
export interface TemplateInput {
  /** npm package name, e.g. `tuneforge-plugin-ia3` or `@acme/ia3`. */
  packageName: string;
  /** The tuneforge version range the plugin declares as its peer dependency. */
  tuneforgeRange: string;
}

const index = (t: TemplateInput) => `/**
 * ${t.packageName}: a tuneforge plugin. IA³ — each targeted linear layer's output is multiplied by a learned vector
 * l [out] (started at 1, so training starts from the base model): y = (W x) ⊙ l, merged as W' = diag(l) W.
 */
import { z } from 'zod';
import { hostTensor, op, type HostTensor, type LinearSite, type Plugin } from 'tuneforge';

/** The options, as a zod schema (\`tuneforge plugins\` shows it; JSON configs and HTTP jobs are checked against it). */
export const optionsSchema = z
  .object({
    targets: z.array(z.string()).min(1).default(['k_proj', 'v_proj', 'down_proj']).describe('linear layers whose outputs are scaled'),
  })
  .strict();
export type Options = z.input<typeof optionsSchema>;

export const NAME = ${JSON.stringify(t.packageName)};
const scaleName = (module: string) => \`\${module}.ia3_l\`;

export function ia3(options: Options = {}): Plugin {
  const parsed = optionsSchema.safeParse(options);
  if (!parsed.success) throw new Error(\`\${NAME}: \${parsed.error.issues.map((i) => \`\${i.path.join('.') || '(options)'}: \${i.message}\`).join('; ')}\`);
  const config = parsed.data;
  const sites = new Map<string, LinearSite>();
  return {
    name: NAME,
    options: { ...config },
    'config:validate'(ctx) {
      const modules = new Set(ctx.model.specs.map((s) => s.name.split('.').at(-2)!));
      return config.targets.filter((t) => !modules.has(t)).map((t) => \`targets: the model has no linear layer '\${t}'\`);
    },
    'model:linear'(_ctx, site, x, weight, bias, next) {
      const y = next(site, x, weight, bias); // [..., out]
      if (site.layer < 0 || !config.targets.includes(site.module)) return y;
      sites.set(site.name, site);
      return op.mul(y, x.builder.input(scaleName(site.name), 'float32', [site.outFeatures])); // [..., out] * [out]
    },
    'params:init'(_ctx, pending) {
      const values = new Map<string, HostTensor>();
      for (const p of pending) if (sites.has(p.name.replace(/\\.ia3_l$/, ''))) values.set(p.name, hostTensor('float32', p.shape, new Float32Array(p.shape[0]!).fill(1)));
      return values;
    },
    'params:trainable'(_ctx, current) {
      return new Set([...current, ...[...sites.keys()].map(scaleName)]);
    },
    'export:merge'(_ctx, weights, trained) {
      const out = new Map(weights);
      for (const module of sites.keys()) {
        const w = weights.get(\`\${module}.weight\`)!;
        const l = trained.get(scaleName(module))!.data as Float32Array;
        const [rows, cols] = w.shape as [number, number];
        const merged = (w.data as Float32Array).slice();
        for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) merged[r * cols + c]! *= l[r]!;
        out.set(\`\${module}.weight\`, hostTensor('float32', [rows, cols], merged));
      }
      return out;
    },
  };
}

/** The factory a JSON config or an HTTP job calls: \`{ "name": ${JSON.stringify(t.packageName)}, "options": { ... } }\`. */
export default function plugin(options: Options = {}): Plugin {
  return ia3(options);
}
`;

const test = (t: TemplateInput) => `/** The plugin through tuneforge's kit: finite differences, kill and resume, the merged export, the planner. */
import { expect, test } from 'bun:test';
import { join } from 'node:path';
import { expectExportRoundTrip, expectGradients, expectPlanHolds, expectResumeExact } from 'tuneforge/testing';
import { ia3 } from '../src/index.ts';

const plugins = () => [ia3({ targets: ['k_proj', 'v_proj', 'down_proj'] })];

test('gradients match finite differences', async () => {
  expect((await expectGradients({ plugins })).ok).toBe(true);
}, 60_000);

test('kill and resume give identical weights', async () => {
  await expectResumeExact({ plugins });
}, 60_000);

test('the merged export equals the plugin on the base model', async () => {
  expect((await expectExportRoundTrip({ plugins })).merged).toBeLessThan(1e-4);
}, 60_000);

test('the memory plan holds for a short run', async () => {
  await expectPlanHolds({ plugins: [{ name: join(import.meta.dir, '..', 'src', 'index.ts') }] });
}, 60_000);
`;

const readme = (t: TemplateInput) => `# ${t.packageName}

A [tuneforge](https://www.npmjs.com/package/tuneforge) plugin (scaffolded by \`tuneforge new plugin\`): IA³, learned
per-channel scales on the outputs of chosen linear layers.

\`\`\`ts
// train.config.ts
import { defineConfig } from 'tuneforge';
import { ia3 } from '${t.packageName}';
export default defineConfig({ model: 'HuggingFaceTB/SmolLM2-135M', data: { train: 'data.jsonl' }, plugins: [ia3({ targets: ['k_proj', 'v_proj'] })] });
\`\`\`

In a JSON config or an HTTP job: \`{ "plugins": [{ "name": "${t.packageName}", "options": { "targets": ["k_proj", "v_proj"] } }] }\`
(a server runs it only when started with \`--allow-plugin ${t.packageName}\`).

\`bun test\` runs the kit's checks (\`tuneforge/testing\`): gradients against finite differences on a tiny random
Llama, kill-and-resume, the merged export, the memory planner. Publish with \`npm publish\`; keep the
\`tuneforge-plugin\` keyword so \`tuneforge plugins\` lists it in projects that install it.
`;

const packageJson = (t: TemplateInput) => `${JSON.stringify({
  name: t.packageName, version: '0.1.0', description: 'IA3 for tuneforge (scaffolded)', type: 'module',
  keywords: ['tuneforge-plugin'], exports: { '.': './src/index.ts' }, types: './src/index.ts', files: ['src', 'README.md'],
  scripts: { test: 'bun test' }, peerDependencies: { tuneforge: t.tuneforgeRange }, dependencies: { zod: '^4.0.0' },
}, null, 2)}\n`;

/** Relative path -> content. */
export function pluginTemplate(t: TemplateInput): Record<string, string> {
  return { 'package.json': packageJson(t), 'src/index.ts': index(t), 'test/plugin.test.ts': test(t), 'README.md': readme(t) };
}
