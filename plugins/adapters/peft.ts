/**
 * Reads LLM-Adapters' `BOTTLENECK` folders: the config's fields become `adapters()` options, and the bottleneck
 * size of each layer comes from its tensors, so the plugin's graph inputs have exactly the file's names and shapes.
 */
import { z } from 'zod';
import type { HostTensor, Plugin } from '../../core/index.ts';
import { AdapterConfigError, parseAdapterConfig, type PeftFormat } from '../peft/format.ts';
import { NON_LINEARITIES, type AdaptersOptions } from './config.ts';
import { adapters } from './index.ts';
import { adapterWidths, downName, placementOf, scalingName, upName } from './layer.ts';

/** `BottleneckConfig`'s fields (defaults as the fork's dataclass); other fields PEFT writes are ignored. */
const bottleneckConfigSchema = z
  .object({
    peft_type: z.literal('BOTTLENECK'),
    bottleneck_size: z.number().int().positive().optional(),
    non_linearity: z.enum(NON_LINEARITIES).default('tanh'),
    adapter_dropout: z.number().min(0).lt(1).default(0),
    use_parallel_adapter: z.boolean().default(false),
    use_adapterp: z.boolean().default(false),
    target_modules: z.union([z.array(z.string()).min(1), z.string()]).nullish(),
    scaling: z.union([z.number(), z.literal('learned')]).default(1),
    init_weights: z.enum(['bert', 'mam_adapter']).default('bert'),
    // Which base biases the fork trained; LLaMA has none, and a file holding any is refused below.
    bias: z.enum(['none', 'all', 'adapter_only']).default('none'),
  })
  .loose();

const SUFFIX = /\.(adapter_down\.weight|adapter_up\.weight|adapter_scaling)$/;

interface FileLayer {
  down?: readonly number[];
  up?: readonly number[];
  scaling?: readonly number[];
}

/** The file's tensors grouped by module; anything that is not an adapter tensor is an error. */
function layersOf(tensors: ReadonlyMap<string, HostTensor>, where: string): Map<string, FileLayer> {
  const layers = new Map<string, FileLayer>();
  for (const [name, t] of tensors) {
    const m = SUFFIX.exec(name);
    if (!m) throw new Error(`${where}: tensor '${name}' is not a bottleneck adapter tensor (adapter_down.weight, adapter_up.weight, adapter_scaling); trained base biases (bias != "none") are not supported`);
    const module = name.slice(0, m.index);
    const layer = layers.get(module) ?? {};
    if (m[1] === 'adapter_down.weight') layer.down = t.shape;
    else if (m[1] === 'adapter_up.weight') layer.up = t.shape;
    else layer.scaling = t.shape;
    layers.set(module, layer);
  }
  if (layers.size === 0) throw new Error(`${where}: the adapter file holds no tensors`);
  return layers;
}

export const bottleneckPeft: PeftFormat = {
  types: ['BOTTLENECK'],

  plugin(raw, tensors, where): Plugin {
    const c = parseAdapterConfig(bottleneckConfigSchema, raw, where);
    const layers = layersOf(tensors, where);
    const learned = c.scaling === 'learned';
    const sizes = new Map<string, { size: number; width: number }>();
    for (const [module, l] of layers) {
      if (!l.down || !l.up) throw new Error(`${where}: '${module}' has ${l.down ? 'adapter_down but no adapter_up' : 'adapter_up but no adapter_down'}`);
      if (l.down.length !== 2 || l.up.length !== 2 || l.up[1] !== l.down[0]) {
        throw new Error(`${where}: '${module}': adapter_down [${l.down}] and adapter_up [${l.up}] are not [bs, d_in] and [d_out, bs]`);
      }
      if (learned && !l.scaling) throw new AdapterConfigError(where, 'scaling', `"learned", but '${scalingName(module)}' is missing`);
      if (!learned && l.scaling) throw new AdapterConfigError(where, 'scaling', `${c.scaling}, but the file holds a learned '${scalingName(module)}'`);
      if (l.scaling && l.scaling.join() !== '1') throw new Error(`${where}: '${scalingName(module)}' has shape [${l.scaling}], expected [1]`);
      sizes.set(module, { size: l.down[0]!, width: l.down[1]! });
    }
    // Our export clamps a bottleneck to the width it reads; the fork never clamps. Which one made this file?
    const all = [...sizes.values()];
    const requested = c.bottleneck_size ?? Math.max(...all.map((s) => s.size));
    const clamped = all.every((s) => s.size === Math.min(requested, s.width));
    const unclamped = all.every((s) => s.size === requested);
    if (!clamped && !unclamped) {
      throw new AdapterConfigError(where, 'bottleneck_size', `${requested} does not match the tensors' bottleneck sizes (${[...new Set(all.map((s) => s.size))].join(', ')})`);
    }
    const kind = c.use_parallel_adapter ? 'parallel' : 'series';
    const options: AdaptersOptions = {
      kind,
      bottleneckSize: requested,
      clampToWidth: clamped,
      nonLinearity: c.non_linearity,
      dropout: c.adapter_dropout,
      scaling: c.scaling,
      init: c.init_weights === 'mam_adapter' ? 'mam' : 'bert',
      // Exactly the file's modules: the config's target_modules may match more (or be absent).
      targets: [...layers.keys()],
    };
    const plugin = adapters(options);
    const validate = plugin['config:validate'];
    return {
      ...plugin,
      // The file's shapes must be the ones the plugin builds on this model.
      'config:validate'(ctx) {
        const problems = [...(validate?.(ctx) ?? [])];
        const specs = new Map(ctx.model.specs.map((s) => [s.name, s.shape]));
        for (const [module, l] of layers) {
          const w = specs.get(`${module}.weight`);
          if (!w) {
            problems.push(`${where}: the model has no linear layer '${module}'`);
            continue;
          }
          const site = { module: module.slice(module.lastIndexOf('.') + 1), inFeatures: w[1]!, outFeatures: w[0]! };
          const { dIn, dOut } = adapterWidths(placementOf(kind, site), site);
          if (l.down![1] !== dIn) problems.push(`${where}: '${downName(module)}' is [${l.down}], but its ${kind} adapter reads width ${dIn}`);
          if (l.up![0] !== dOut) problems.push(`${where}: '${upName(module)}' is [${l.up}], but its ${kind} adapter writes width ${dOut}`);
        }
        return problems;
      },
    };
  },
};
