/**
 * Third-party plugins: a plugin published as its own npm package (plain JavaScript, outside this repository) is named
 * in a JSON config exactly like a built-in and takes part in a run through the same hooks. Broken combinations
 * (hook-name typos, duplicate names, missing `requires`) are refused before anything runs, all problems at once.
 */
import { afterAll, describe, expect, test } from 'bun:test';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { readAll } from '../../core/index.ts';
import { PluginError } from '../../core/plugin/driver.ts';
import { loadConfigFile } from '../../core/train/load-config.ts';
import { train } from '../../core/train/trainer.ts';
import { BUILTIN_PLUGINS } from '../../plugins/index.ts';
import { quiet, readJsonl, removeTempDirs, silentProgress, STORIES, storiesMissing, tempDir, writeTinyData } from './helpers.ts';

afterAll(removeTempDirs);

const missing = storiesMissing('plugin package tests');

/** Writes `node_modules/<name>/` with a package.json and an index.js into `root`. */
function writePackage(root: string, name: string, indexJs: string): void {
  const dir = join(root, 'node_modules', ...name.split('/'));
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name, version: '1.0.0', type: 'module', main: 'index.js' }, null, 2));
  writeFileSync(join(dir, 'index.js'), indexJs);
}

/** The probe: logs every step's loss to `options.lossFile`, trains only `options.tensor`, validates its options. */
const PROBE_JS = `
import { appendFileSync } from 'node:fs';

export default function probe(options = {}) {
  return {
    name: '@acme/probe',
    options,
    'config:validate'(ctx) {
      const problems = [];
      if (typeof options.lossFile !== 'string') problems.push('options.lossFile must be a file path');
      if (!ctx.model.specs.some((s) => s.name === options.tensor)) problems.push('options.tensor ' + JSON.stringify(options.tensor) + ' is not a parameter of the model');
      return problems;
    },
    'params:trainable'(_ctx, current) {
      return new Set([...current, options.tensor]);
    },
    'step:after'(ctx, result) {
      appendFileSync(options.lossFile, JSON.stringify({ step: ctx.step, loss: result.loss, trainable: [...ctx.trainable] }) + '\\n');
    },
  };
}
`;

/** A broken plugin package: a typo in a hook name and a requirement nobody provides. */
const BROKEN_JS = `
export default function broken() {
  return {
    name: '@acme/broken',
    requires: ['@acme/not-installed'],
    'step:afer'() {},
    'train:start'() { throw new Error('must never run'); },
  };
}
`;

function writeConfig(dir: string, plugins: unknown[], extra: Record<string, unknown> = {}): string {
  const path = join(dir, `config-${Math.random().toString(36).slice(2)}.json`);
  writeFileSync(path, JSON.stringify({
    model: STORIES, output: 'run', seed: 1,
    data: { train: 'train.jsonl', maxLength: 32 },
    train: { steps: 3, batchSize: 4, lr: 1e-2 },
    export: { adapters: false },
    plugins,
    ...extra,
  }, null, 2));
  return path;
}

describe.skipIf(missing)('a plugin from its own npm package', () => {
  test('is loaded from a JSON config by package name and runs through its hooks', async () => {
    const dir = tempDir('plugin-package');
    writeTinyData(dir);
    writePackage(dir, '@acme/tuneforge-probe', PROBE_JS);
    const lossFile = join(dir, 'losses.jsonl');
    const configPath = writeConfig(dir, [{ name: '@acme/tuneforge-probe', options: { lossFile, tensor: 'model.norm.weight' } }]);

    const { config, plugins } = await loadConfigFile(configPath, BUILTIN_PLUGINS);
    expect(plugins.map((p) => p.name)).toEqual(['@acme/probe']);
    expect(plugins[0]!.options).toEqual({ lossFile, tensor: 'model.norm.weight' });
    expect(config.output).toBe(join(dir, 'run'));
    const result = await train({ config, plugins, progress: silentProgress, log: quiet });

    // step:after ran once per step, with the loss the trainer recorded in metrics.jsonl.
    const probed = readJsonl(lossFile) as unknown as { step: number; loss: number; trainable: string[] }[];
    const metrics = readJsonl(join(dir, 'run', 'metrics.jsonl')).filter((r) => 'loss' in r);
    expect(probed.map((r) => r.step)).toEqual([1, 2, 3]);
    expect(probed.map((r) => r.loss)).toEqual(metrics.map((r) => r.loss!));
    expect(probed.every((r) => r.trainable.join() === 'model.norm.weight')).toBe(true);

    // params:trainable chose one tensor: only it was trained, and in the exported model only it differs from the base.
    expect([...result.trained.keys()]).toEqual(['model.norm.weight']);
    const base = await readAll(join(STORIES, 'model.safetensors'), { as: 'float32' });
    const exported = await readAll(join(dir, 'run', 'export', 'model', 'model.safetensors'));
    const changed = [...exported].filter(([n, t]) => (t.data as Float32Array).some((v, i) => v !== (base.get(n)!.data as Float32Array)[i])).map(([n]) => n);
    expect(changed).toEqual(['model.norm.weight']);
  }, 20_000);

  test("its config:validate problems are reported with the plugin's name before training", async () => {
    const dir = tempDir('plugin-package-validate');
    writeTinyData(dir);
    writePackage(dir, '@acme/tuneforge-probe', PROBE_JS);
    const { config, plugins } = await loadConfigFile(writeConfig(dir, [{ name: '@acme/tuneforge-probe', options: { tensor: 'model.nope' } }]), BUILTIN_PLUGINS);
    const error = await train({ config, plugins, progress: silentProgress, log: quiet }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(PluginError);
    expect((error as PluginError).problems).toEqual([
      "plugin '@acme/probe': options.lossFile must be a file path",
      `plugin '@acme/probe': options.tensor "model.nope" is not a parameter of the model`,
    ]);
    expect(existsSync(join(dir, 'run'))).toBe(false);
  }, 20_000);

  test('a typo in a hook name, a duplicate name and a missing requirement are refused together, before anything runs', async () => {
    const dir = tempDir('plugin-package-broken');
    writeTinyData(dir);
    writePackage(dir, '@acme/tuneforge-probe', PROBE_JS);
    writePackage(dir, '@acme/tuneforge-broken', BROKEN_JS);
    const lossFile = join(dir, 'losses.jsonl');
    const probe = { name: '@acme/tuneforge-probe', options: { lossFile, tensor: 'model.norm.weight' } };
    const { config, plugins } = await loadConfigFile(writeConfig(dir, ['full', probe, '@acme/tuneforge-broken', probe]), BUILTIN_PLUGINS);
    expect(plugins.map((p) => p.name)).toEqual(['tuneforge:full', '@acme/probe', '@acme/broken', '@acme/probe']);

    const error = await train({ config, plugins, progress: silentProgress, log: quiet }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(PluginError);
    const { problems, message } = error as PluginError;
    expect(problems).toHaveLength(3);
    expect(problems).toContain("plugins[3]: '@acme/probe' appears twice");
    expect(problems).toContain("plugin '@acme/broken': unknown hook 'step:afer' (did you mean 'step:after'?)");
    expect(problems).toContain("plugin '@acme/broken' requires '@acme/not-installed', which is not in the plugin list");
    expect(message).toStartWith('invalid plugin configuration (3 problems):');
    for (const p of problems) expect(message).toContain(p);
    // Nothing ran: no hook of any plugin (the probe's config:validate would have been first), no run folder.
    expect(existsSync(lossFile)).toBe(false);
    expect(existsSync(join(dir, 'run'))).toBe(false);
  }, 20_000);

  test('a package that cannot be found or exports no factory is named in the error', async () => {
    const dir = tempDir('plugin-package-missing');
    writeTinyData(dir);
    writePackage(dir, '@acme/tuneforge-empty', 'export const version = 1;\n');
    const error = await loadConfigFile(writeConfig(dir, ['@acme/tuneforge-absent', '@acme/tuneforge-empty']), BUILTIN_PLUGINS).catch((e: unknown) => e as Error);
    expect(error).toBeInstanceOf(Error);
    const message = (error as Error).message;
    expect(message).toContain("plugins[0] ('@acme/tuneforge-absent')");
    expect(message).toContain("plugins[1] ('@acme/tuneforge-empty'): plugin '@acme/tuneforge-empty': expected a default export");
  });
});
