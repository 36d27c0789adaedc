/**
 * Writes `schemas/config.schema.json`, the JSON Schema of a training config file, from `trainConfigSchema` (so the
 * two cannot drift apart; tests/train/config.test.ts fails when the committed file is stale).
 *
 *   bun run schemas          # regenerate after changing core/train/config.ts or a data option
 *
 * Editors use it for completion and checks in JSON configs: `{ "$schema": "./schemas/config.schema.json", ... }`.
 * The schema describes what a user writes (zod's input side: fields with defaults are optional). In JSON a plugin is
 * a name or `{ name, options }`; the config schema also admits plugin objects (factory calls in a TS config), which
 * JSON cannot hold, so that branch is left out.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { trainConfigSchema } from '../core/train/config.ts';

export const CONFIG_SCHEMA_PATH = join(import.meta.dir, 'config.schema.json');

type JsonSchema = Record<string, unknown>;

/** The JSON Schema as the text written to config.schema.json (stable key order, trailing newline). */
export function generateConfigSchema(): string {
  const schema = z.toJSONSchema(trainConfigSchema, {
    io: 'input',
    // z.custom (the plugin-object check) has no JSON Schema; the override below removes the branch it would occupy.
    unrepresentable: 'any',
    override: (ctx) => {
      const def = ctx.zodSchema._zod.def as { type: string; options?: readonly { _zod: { def: { type: string } } }[] };
      if (def.type !== 'union' || !def.options) return;
      const custom = def.options.findIndex((o) => o._zod.def.type === 'custom');
      const json = ctx.jsonSchema as JsonSchema & { anyOf?: JsonSchema[] };
      if (custom < 0 || !json.anyOf) return;
      const rest = json.anyOf.filter((_, i) => i !== custom);
      delete json.anyOf;
      if (rest.length === 1) Object.assign(json, rest[0]);
      else json.anyOf = rest;
    },
  }) as JsonSchema;
  const out = {
    $schema: schema.$schema,
    title: 'tuneforge training config',
    description: 'A training run: model, data, optimisation, evaluation, checkpoints, export and plugins (see core/train/config.ts).',
    ...schema,
  };
  return `${JSON.stringify(out, null, 2)}\n`;
}

if (import.meta.main) {
  writeFileSync(CONFIG_SCHEMA_PATH, generateConfigSchema());
  console.log(`wrote ${CONFIG_SCHEMA_PATH}`);
}
