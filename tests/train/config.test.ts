/**
 * Training configs: every problem is reported at once with its field path; JSON and TypeScript config files are
 * accepted; relative paths are resolved against the config file's folder; the committed JSON Schema
 * (schemas/config.schema.json) is exactly what schemas/generate.ts produces from the zod schema.
 */
import { afterAll, describe, expect, test } from 'bun:test';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseTrainConfig } from '../../core/train/config.ts';
import { loadConfigFile, loadConfigObject } from '../../core/train/load-config.ts';
import { BUILTIN_PLUGINS } from '../../plugins/index.ts';
import { CONFIG_SCHEMA_PATH, generateConfigSchema } from '../../schemas/generate.ts';
import { removeTempDirs, REPO, tempDir } from './helpers.ts';

afterAll(removeTempDirs);

/** The message of what `fn` throws (or rejects with); fails the test when it does not throw. */
async function errorOf(fn: () => unknown): Promise<string> {
  try {
    await fn();
  } catch (e) {
    return (e as Error).message;
  }
  throw new Error('expected an error, none was thrown');
}

describe('config validation', () => {
  test('every problem is listed at once, each with its field path', async () => {
    const message = await errorOf(() =>
      parseTrainConfig({
        model: 'org/model',
        colour: 'blue',
        data: { train: 'a.jsonl', maxLength: 1, maxLenght: 64 },
        task: { choise: {} },
        train: { lr: -1, batchSize: 2.5, optimizer: 'adam', stepz: 3 },
        eval: { every: -1 },
        checkpoint: { keep: 0 },
        plugins: [42],
      }, 'my.json'),
    );
    const lines = message.split('\n');
    expect(lines[0]).toBe('my.json: invalid config (11 problems):');
    const expected = [
      /^ {2}\(root\): Unrecognized key: "colour"$/,
      /^ {2}data\.maxLength: Too small: expected number to be >=2$/,
      /^ {2}data: Unrecognized key: "maxLenght"$/,
      /^ {2}task: Unrecognized key: "choise"$/,
      /^ {2}train\.lr: Too small: expected number to be >0$/,
      /^ {2}train\.batchSize: .*int/,
      /^ {2}train\.optimizer: .*"adamw"\|"sgd"/,
      /^ {2}train: Unrecognized key: "stepz"$/,
      /^ {2}eval\.every: Too small/,
      /^ {2}checkpoint\.keep: Too small/,
      /^ {2}plugins\.0: /,
    ];
    for (const re of expected) expect(lines.some((l) => re.test(l))).toBe(true);
    expect(lines).toHaveLength(1 + expected.length);
  });

  test('a missing model and a choice task without {text} name their fields', async () => {
    const message = await errorOf(() => parseTrainConfig({ task: { choice: { template: 'no placeholder', choices: ['a'], trainFile: 't.tsv' } } }));
    expect(message).toContain('config: invalid config (3 problems)');
    expect(message).toContain('  model: ');
    expect(message).toContain('  task.choice.template: template must contain {text}');
    expect(message).toContain('  task.choice.choices: ');
  });

  test('defaults fill in what a minimal config leaves out', () => {
    const c = parseTrainConfig({ model: 'org/model' });
    expect(c.train).toMatchObject({ batchSize: 8, optimizer: 'adamw', lr: 1e-4, schedule: 'linear', maxGradNorm: 1 });
    expect(c.data.maxLength).toBe(2048); // the default; the trainer caps it at the model's context length
    expect(c.checkpoint).toEqual({ every: 0, keep: 2 });
    expect(c.export).toEqual({ merged: 'auto', adapters: true });
    expect(c.plugins).toEqual([]);
  });
});

describe('config files', () => {
  test('a JSON config: paths relative to its folder, built-in plugins by name and { name, options }', async () => {
    const dir = tempDir('config-json');
    mkdirSync(join(dir, 'models', 'tiny'), { recursive: true });
    const path = join(dir, 'sub', 'run.json');
    mkdirSync(join(dir, 'sub'));
    writeFileSync(path, JSON.stringify({
      model: '../models/tiny',
      output: 'out/run1',
      data: { train: ['data/a.jsonl', '/abs/b.jsonl'], eval: 'data/eval.jsonl' },
      plugins: ['full', { name: 'lora', options: { r: 2, targets: ['q_proj'] } }],
    }));
    const { config, plugins } = await loadConfigFile(path, BUILTIN_PLUGINS);
    expect(config.model).toBe(join(dir, 'models', 'tiny'));
    expect(config.output).toBe(join(dir, 'sub', 'out', 'run1'));
    expect(config.data.train).toEqual([join(dir, 'sub', 'data', 'a.jsonl'), '/abs/b.jsonl']);
    expect(config.data.eval).toBe(join(dir, 'sub', 'data', 'eval.jsonl'));
    expect(plugins.map((p) => p.name)).toEqual(['tuneforge:full', 'tuneforge:lora']);
    expect(plugins[1]!.options).toMatchObject({ r: 2, targets: ['q_proj'] });
  });

  test('a TypeScript config: the default export, plugin factory calls, Hub ids left alone', async () => {
    const dir = tempDir('config-ts');
    const path = join(dir, 'run.config.ts');
    writeFileSync(path, [
      `import { defineConfig } from ${JSON.stringify(join(REPO, 'core/train/config.ts'))};`,
      `import { lora } from ${JSON.stringify(join(REPO, 'plugins/lora/index.ts'))};`,
      `export default defineConfig({`,
      `  model: 'HuggingFaceTB/SmolLM2-135M',`,
      `  task: { choice: { template: 'Review: {text}', choices: [' no', ' yes'], trainFile: 'sst2/train.tsv', evalFile: ['sst2/dev.tsv'] } },`,
      `  train: { steps: 3 },`,
      `  plugins: [lora({ r: 4 })],`,
      `});`,
    ].join('\n'));
    const { config, plugins } = await loadConfigFile(path, BUILTIN_PLUGINS);
    expect(config.model).toBe('HuggingFaceTB/SmolLM2-135M'); // no such folder beside the config: a Hub id
    expect(config.output).toBe(join(dir, 'runs', 'run'));
    expect(config.task.choice!.trainFile).toBe(join(dir, 'sst2', 'train.tsv'));
    expect(config.task.choice!.evalFile).toEqual([join(dir, 'sst2', 'dev.tsv')]);
    expect(config.train.steps).toBe(3);
    expect(plugins.map((p) => p.name)).toEqual(['tuneforge:lora']);
    expect(plugins[0]).toBe(config.plugins[0] as never); // the object the factory returned, passed through
  });

  test('problems in a config file name the file, and bad plugin options name the plugin entry', async () => {
    const dir = tempDir('config-bad');
    const bad = join(dir, 'bad.json');
    writeFileSync(bad, JSON.stringify({ model: 'm', train: { lr: 0 } }));
    expect(await errorOf(() => loadConfigFile(bad, BUILTIN_PLUGINS))).toBe(`${bad}: invalid config (1 problem):\n  train.lr: Too small: expected number to be >0`);

    const broken = join(dir, 'broken.json');
    writeFileSync(broken, '{ "model": "m", }');
    expect(await errorOf(() => loadConfigFile(broken, BUILTIN_PLUGINS))).toStartWith(`${broken}: invalid JSON (`);

    const noDefault = join(dir, 'nodefault.config.ts');
    writeFileSync(noDefault, 'export const config = { model: "m" };\n');
    expect(await errorOf(() => loadConfigFile(noDefault, BUILTIN_PLUGINS))).toContain('no default export');

    expect(await errorOf(() => loadConfigFile(join(dir, 'absent.json'), BUILTIN_PLUGINS))).toBe(`config file ${join(dir, 'absent.json')} does not exist`);

    const message = await errorOf(() => loadConfigObject({ model: 'm', plugins: [{ name: 'lora', options: { r: -1 } }, 'nonexistent-plugin-xyz'] }, BUILTIN_PLUGINS, dir));
    expect(message).toStartWith('cannot load plugins:\n');
    expect(message).toContain("plugins[0] ('lora'): ");
    expect(message).toContain("plugins[1] ('nonexistent-plugin-xyz'): ");
    expect(message).toContain('built-ins: full, lora');
  });
});

type Schema = {
  type?: string; properties?: Record<string, Schema>; required?: string[]; additionalProperties?: boolean | Schema;
  enum?: unknown[]; const?: unknown; anyOf?: Schema[]; items?: Schema;
};

/**
 * A deliberately small JSON Schema checker (type, properties, required, additionalProperties, enum, const, anyOf,
 * items): enough to see that the generated schema describes real configs and rejects broken ones.
 */
function schemaProblems(schema: Schema, value: unknown, path = '$'): string[] {
  if (schema.anyOf) return schema.anyOf.some((s) => schemaProblems(s, value, path).length === 0) ? [] : [`${path}: matches no alternative`];
  if (schema.const !== undefined && value !== schema.const) return [`${path}: not ${JSON.stringify(schema.const)}`];
  if (schema.enum && !schema.enum.includes(value)) return [`${path}: not one of ${JSON.stringify(schema.enum)}`];
  const kind = Array.isArray(value) ? 'array' : value === null ? 'null' : Number.isInteger(value) ? 'integer' : typeof value;
  if (schema.type && schema.type !== kind && !(schema.type === 'number' && kind === 'integer')) return [`${path}: expected ${schema.type}, got ${kind}`];
  const out: string[] = [];
  if (kind === 'array' && schema.items) (value as unknown[]).forEach((v, i) => out.push(...schemaProblems(schema.items!, v, `${path}[${i}]`)));
  if (kind === 'object') {
    const obj = value as Record<string, unknown>;
    for (const r of schema.required ?? []) if (!(r in obj)) out.push(`${path}.${r}: required`);
    for (const [k, v] of Object.entries(obj)) {
      const sub = schema.properties?.[k];
      if (sub) out.push(...schemaProblems(sub, v, `${path}.${k}`));
      else if (schema.additionalProperties === false) out.push(`${path}.${k}: unknown key`);
    }
  }
  return out;
}

describe('JSON Schema (schemas/config.schema.json)', () => {
  const committed = readFileSync(CONFIG_SCHEMA_PATH, 'utf8');
  const schema = JSON.parse(committed) as Schema & Record<string, unknown>;

  test('is up to date with core/train/config.ts (regenerate with `bun run schemas`)', () => {
    expect(committed).toBe(generateConfigSchema());
  });

  test('describes the config: sections, documented fields, defaults, JSON plugin references', () => {
    expect(schema.$schema).toBe('https://json-schema.org/draft/2020-12/schema');
    expect(schema.required).toEqual(['model']);
    expect(schema.additionalProperties).toBe(false);
    const props = schema.properties!;
    expect(Object.keys(props).sort()).toEqual(['checkpoint', 'data', 'eval', 'export', 'memory', 'model', 'output', 'plugins', 'precision', 'seed', 'task', 'train']);
    const lr = props.train!.properties!.lr as Schema & { default?: number; description?: string; exclusiveMinimum?: number };
    expect(lr).toMatchObject({ type: 'number', default: 1e-4, exclusiveMinimum: 0 });
    expect(lr.description).toBe('peak learning rate');
    expect(props.data!.properties!.maxLength).toMatchObject({ type: 'integer', minimum: 2 });
    expect(props.task!.properties!.choice!.required).toEqual(['template', 'choices', 'trainFile']);
    expect(props.plugins!.items!.anyOf!.map((s) => s.type)).toEqual(['string', 'object']);
  });

  test('accepts the example configs (plugins written as JSON references) and rejects broken ones', async () => {
    const examples = readdirSync(join(REPO, 'examples')).filter((f) => f.endsWith('.config.ts'));
    expect(examples).toContain('sst2.config.ts');
    for (const file of examples) {
      const raw = (await import(join(REPO, 'examples', file))).default as Record<string, unknown> & { plugins: { name: string; options?: unknown }[] };
      // Plugin objects exist only in TS configs; in JSON the same plugin is { name, options }.
      const json = JSON.parse(JSON.stringify({ ...raw, plugins: raw.plugins.map((p) => ({ name: p.name, options: p.options ?? {} })) }));
      expect(schemaProblems(schema, json)).toEqual([]);
    }
    const good = { model: 'org/model', data: { train: 'a.jsonl', maxLength: 64 }, train: { lr: 1e-3, optimizer: 'sgd' }, plugins: ['full', { name: 'lora', options: { r: 4 } }] };
    expect(schemaProblems(schema, good)).toEqual([]);
    expect(schemaProblems(schema, { ...good, colour: 1, train: { lr: '1e-3', optimizer: 'adam' }, data: { maxLenght: 3 }, plugins: [{ nam: 'x' }] }).sort()).toEqual([
      '$.colour: unknown key',
      '$.data.maxLenght: unknown key',
      '$.plugins[0]: matches no alternative',
      '$.train.lr: expected number, got string',
      '$.train.optimizer: not one of ["adamw","sgd"]',
    ]);
  });
});
