#!/usr/bin/env bun
/**
 * The tuneforge command line.
 *
 *   bun run cli/main.ts train --config examples/sst2-lora.config.ts
 *   bun run cli/main.ts generate --model <dir|owner/name> --prompt "Once upon a time"
 *   bun run cli/main.ts grads --model <dir|owner/name> --batch batch.safetensors [--adapter adapter/] --out grads.safetensors
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { computeGrads } from './grads.ts';
import { EXPORT_FORMATS, exportGgufCommand, unknownFormatMessage } from './export-gguf.ts';
import { GGUF_QUANTS } from '../core/export/gguf/index.ts';
import { runGenerate } from './generate.ts';
import { reportCommand } from './report.ts';
import { newPluginCommand } from './new-plugin.ts';
import { pluginsCommand } from './plugins.ts';
import { evalCommand, exportRunCommand, planCommand, trainCommand, type RunCommandOptions } from './run-commands.ts';

interface Command {
  summary: string;
  usage: string;
  options: NonNullable<ParseArgsConfig['options']>;
  /** Takes positional arguments (passed to `run` after the options). */
  positionals?: boolean;
  run(values: Record<string, string | boolean | string[] | undefined>, positionals: string[]): Promise<void>;
}

const num = (v: unknown, name: string): number | undefined => {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new UsageError(`--${name} must be a number, got '${v}'`);
  return n;
};

class UsageError extends Error {}

function required(values: Record<string, unknown>, names: string[]): void {
  const missing = names.filter((n) => values[n] === undefined);
  if (missing.length) throw new UsageError(`missing ${missing.map((m) => `--${m}`).join(', ')}`);
}

const runOptions = {
  config: { type: 'string' }, steps: { type: 'string' }, output: { type: 'string' }, seed: { type: 'string' }, 'no-resume': { type: 'boolean' },
  adapter: { type: 'string' },
} as const;

function runArgs(v: Record<string, string | boolean | string[] | undefined>): RunCommandOptions {
  required(v, ['config']);
  return {
    config: v.config as string, steps: num(v.steps, 'steps'), output: v.output as string | undefined,
    seed: num(v.seed, 'seed'), resume: !v['no-resume'], adapter: v.adapter as string | undefined,
  };
}

const COMMANDS: Record<string, Command> = {
  train: {
    summary: 'fine-tune a model as a config file describes (resumes from the latest checkpoint)',
    usage: 'train --config <file.ts|file.json> [--adapter <PEFT adapter dir>] [--steps N] [--output dir] [--seed N] [--no-resume] [--sidecar URL [--sidecar-token-file FILE]]',
    options: { ...runOptions, sidecar: { type: 'string' }, 'sidecar-token-file': { type: 'string' } },
    run: (v) => {
      if (v['sidecar-token-file'] !== undefined && v.sidecar === undefined) throw new UsageError('--sidecar-token-file goes with --sidecar URL');
      return trainCommand({ ...runArgs(v), ...(v.sidecar !== undefined ? { sidecar: { url: v.sidecar as string, tokenFile: v['sidecar-token-file'] as string | undefined } } : {}) });
    },
  },
  plan: {
    summary: "predict a run's peak memory before it starts (fits it to memory.budget when set)",
    usage: 'plan --config <file.ts|file.json> [--json] [--micro-batch N] [--checkpointing] [--no-data]',
    options: { ...runOptions, json: { type: 'boolean' }, 'no-data': { type: 'boolean' }, 'micro-batch': { type: 'string' }, checkpointing: { type: 'boolean' } },
    run: (v) => planCommand({ ...runArgs(v), json: v.json === true, noData: v['no-data'] === true, microBatchSize: num(v['micro-batch'], 'micro-batch'), checkpointing: v.checkpointing === true ? true : undefined }),
  },
  eval: {
    summary: "evaluate a run's latest checkpoint (or the base model) as its config describes",
    usage: 'eval --config <file.ts|file.json> [--adapter <PEFT adapter dir>] [--output dir]',
    options: runOptions,
    run: (v) => evalCommand(runArgs(v)),
  },
  export: {
    summary: "write a run's merged model and adapters from its latest checkpoint (or GGUF files for llama.cpp, a transformers.js folder)",
    usage: 'export --config <file.ts|file.json> [--output dir] | export (--config <file> | --model <dir>) --format gguf [--quant f32|f16|q8_0] --out <file.gguf> | export --config <file> --format gguf-lora --out <file.gguf> | export (--config <file> | --model <dir>) --format onnx --out <dir>',
    options: { ...runOptions, format: { type: 'string' }, quant: { type: 'string' }, out: { type: 'string' }, model: { type: 'string' } },
    async run(v) {
      if (v.format === undefined) {
        if (v.model !== undefined || v.quant !== undefined || v.out !== undefined) throw new UsageError('--model, --quant and --out go with --format gguf, gguf-lora or onnx');
        return exportRunCommand(runArgs(v));
      }
      const format = v.format as string;
      if (!(format in EXPORT_FORMATS)) throw new UsageError(unknownFormatMessage(format));
      if (v.model !== undefined && v.config !== undefined) throw new UsageError('give --config (a run) or --model (a model folder), not both');
      required(v, v.model === undefined ? ['config', 'out'] : ['out']);
      if (v.quant !== undefined && !(GGUF_QUANTS as readonly string[]).includes(v.quant as string)) throw new UsageError(`unknown --quant '${v.quant}'; one of ${GGUF_QUANTS.join(', ')}`);
      // Refusals (a plugin that cannot be merged, an architecture llama.cpp cannot take) exit 1 with their reason.
      await exportGgufCommand({ format, out: v.out as string, quant: v.quant as string | undefined, model: v.model as string | undefined, run: v.model === undefined ? runArgs(v) : undefined });
    },
  },
  generate: {
    summary: 'generate text from a model',
    usage: 'generate --model <dir|owner/name[@rev]> --prompt <text> [--adapter <PEFT adapter dir>] [--max-new-tokens 128] [--temperature 0] [--top-k 0] [--top-p 1] [--seed 0] [--no-cache]',
    options: {
      model: { type: 'string' }, prompt: { type: 'string' }, lora: { type: 'string' }, adapter: { type: 'string' },
      'max-new-tokens': { type: 'string' }, temperature: { type: 'string' }, 'top-k': { type: 'string' },
      'top-p': { type: 'string' }, seed: { type: 'string' }, 'no-cache': { type: 'boolean' }, 'max-len': { type: 'string' },
    },
    async run(v) {
      required(v, ['model', 'prompt']);
      await runGenerate({
        model: v.model as string, prompt: v.prompt as string, lora: v.lora as string | undefined, adapter: v.adapter as string | undefined,
        maxNewTokens: num(v['max-new-tokens'], 'max-new-tokens'), temperature: num(v.temperature, 'temperature'),
        topK: num(v['top-k'], 'top-k'), topP: num(v['top-p'], 'top-p'), seed: num(v.seed, 'seed'),
        cache: !v['no-cache'], maxLen: num(v['max-len'], 'max-len'),
      });
    },
  },
  serve: {
    summary: 'the OpenAI-compatible fine-tuning service (API keys from TUNEFORGE_API_KEYS)',
    usage: 'serve [--port 8000] [--home DIR] [--allow-model PATH]... [--allow-plugin NAME]... [--offline] [--store postgres://...] [--concurrency 1] [--config server.json]',
    options: {
      port: { type: 'string' }, home: { type: 'string' }, 'allow-model': { type: 'string', multiple: true }, 'allow-plugin': { type: 'string', multiple: true },
      offline: { type: 'boolean' }, store: { type: 'string' }, concurrency: { type: 'string' }, config: { type: 'string' },
    },
    async run(v) {
      const { serverConfigFrom, startServer } = await import('../server/serve.ts');
      const server = await startServer(serverConfigFrom({
        port: num(v.port, 'port'), home: v.home as string | undefined, allowModel: v["allow-model"] as string[] | undefined,
        allowPlugin: v["allow-plugin"] as string[] | undefined, offline: v.offline === true ? true : undefined,
        store: v.store as string | undefined, concurrency: num(v.concurrency, 'concurrency'), config: v.config as string | undefined,
      }));
      console.log(`listening on ${server.url}`);
      await new Promise<void>((resolve) => {
        const stop = () => void server.stop().then(resolve);
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
      });
    },
  },
  sidecar: {
    summary: "run compiled steps for a remote runner on this machine's GPU (onnxruntime-node; docs/sidecar.md)",
    usage: 'sidecar [--listen 127.0.0.1:7070] [--provider cuda|webgpu|cpu] [--token-file FILE] [--max-body 4GiB] [--max-sessions 128] [--max-held 32GiB] [--idle-timeout SECONDS] [--allow-origin ORIGIN]...',
    options: {
      listen: { type: 'string' }, provider: { type: 'string' }, 'token-file': { type: 'string' }, 'max-body': { type: 'string' }, 'max-held': { type: 'string' },
      'max-sessions': { type: 'string' }, 'idle-timeout': { type: 'string' }, 'allow-origin': { type: 'string', multiple: true },
    },
    async run(v) {
      const { sidecarCommand } = await import('./sidecar.ts');
      await sidecarCommand({
        listen: v.listen as string | undefined, provider: v.provider as string | undefined, tokenFile: v['token-file'] as string | undefined,
        maxBody: v['max-body'] as string | undefined, maxHeld: v['max-held'] as string | undefined, maxSessions: num(v['max-sessions'], 'max-sessions'), idleTimeout: num(v['idle-timeout'], 'idle-timeout'),
        allowOrigin: v['allow-origin'] as string[] | undefined,
      });
    },
  },
  plugins: {
    summary: 'list the built-in plugins and the plugin packages installed in this project, with their options',
    usage: 'plugins [--verbose] [--json]',
    options: { verbose: { type: 'boolean' }, json: { type: 'boolean' } },
    run: (v) => pluginsCommand({ json: v.json === true, verbose: v.verbose === true }),
  },
  new: {
    summary: 'scaffold a plugin package (package.json, src/index.ts with a factory and a zod options schema, README, a test using tuneforge/testing)',
    usage: 'new plugin <npm-package-name> [--dir DIR]',
    options: { dir: { type: 'string' } },
    positionals: true,
    async run(v, args) {
      if (args[0] !== 'plugin' || args.length !== 2) throw new UsageError("expected 'new plugin <npm-package-name>'");
      newPluginCommand({ name: args[1]!, dir: v.dir as string | undefined });
    },
  },
  report: {
    summary: "write a run's report.html: curves, memory plan vs measured, config, samples (several runs: overlaid)",
    usage: 'report RUN [RUN...] [--out FILE]   (one run: RUN/report.html by default; several: ./report.html)',
    options: { out: { type: 'string' } },
    positionals: true,
    async run(v, runs) {
      if (runs.length === 0) throw new UsageError('missing RUN (a run folder, e.g. runs/sst2-lora)');
      reportCommand({ runs, out: v.out as string | undefined });
    },
  },
  grads: {
    summary: 'write the loss and the gradients of one batch to safetensors',
    usage: 'grads --model <dir|owner/name[@rev]> --batch <file.safetensors> [--adapter <PEFT adapter dir>] --out <file.safetensors>',
    options: { model: { type: 'string' }, batch: { type: 'string' }, lora: { type: 'string' }, adapter: { type: 'string' }, out: { type: 'string' } },
    async run(v) {
      required(v, ['model', 'batch', 'out']);
      const grads = await computeGrads({ model: v.model as string, batch: v.batch as string, lora: v.lora as string | undefined, adapter: v.adapter as string | undefined, out: v.out as string });
      console.log(`loss ${Number(grads.get('loss')!.data[0]).toFixed(6)}; wrote ${grads.size - 1} gradients and the loss to ${v.out}`);
    },
  },
};

function help(): string {
  const lines = ['usage: tuneforge <command> [options]', '', 'commands:'];
  for (const [name, c] of Object.entries(COMMANDS)) lines.push(`  ${name.padEnd(10)} ${c.summary}`, `             ${c.usage}`);
  return lines.join('\n');
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    console.log(help());
    return name ? 0 : 1;
  }
  const command = COMMANDS[name];
  if (!command) {
    console.error(`unknown command '${name}'\n\n${help()}`);
    return 2;
  }
  try {
    const { values, positionals } = parseArgs({ args: rest, options: command.options, strict: true, allowPositionals: command.positionals === true });
    await command.run(values as Record<string, string | boolean | undefined>, positionals);
    return 0;
  } catch (e) {
    if (e instanceof UsageError || (e as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      console.error(`${name}: ${(e as Error).message}\nusage: tuneforge ${command.usage}`);
      return 2;
    }
    console.error(`${name} failed: ${(e as Error).message}`);
    return 1;
  }
}

if (import.meta.main) process.exit(await main(process.argv.slice(2)));
