/**
 * Bottleneck adapters as LLM-Adapters defines them (Hu et al. 2023, EMNLP): a small down-projection, a
 * non-linearity and an up-projection, f(u) = adapter_up(act(adapter_down(u))) · scaling, added to chosen linear
 * layers whose weights stay frozen. Series adapters (Houlsby et al. 2019) sit in the data path, before gate_proj /
 * up_proj and after down_proj; parallel adapters (He et al. 2022) run beside the layer. Exports the fork's PEFT
 * folder; there is no merged model, as f is non-linear.
 *
 * ```ts
 * plugins: [adapters({ kind: 'parallel', bottleneckSize: 256 })]
 * ```
 */
import { hostTensor, op, type HostTensor, type LinearSite, type Plugin, type PluginContext, type Shape, type Tensor } from '../../core/index.ts';
import { resolveShape } from '../../core/ir/shape.ts';
import { targetMatcher } from '../lora/targets.ts';
import { adaptersSchema, targetsOf, type AdaptersConfig, type AdaptersOptions } from './config.ts';
import { peftConfig, writeBottleneckAdapter } from './export.ts';
import { initDown, initScaling, initUp } from './init.ts';
import { adapterWidths, bottleneck, bottleneckOf, downName, maskName, placementOf, scalingName, upName, type Placement } from './layer.ts';

export const ADAPTERS = 'tuneforge:adapters';

/** One adapted linear layer. */
export interface AdaptedLayer {
  site: LinearSite;
  placement: Placement;
  /** The adapter's input and output widths (d_in → d_out of f). */
  dIn: number;
  dOut: number;
  /** The bottleneck built here (bottleneckSize, or dIn when clamped). */
  size: number;
}

export interface AdaptersApi {
  readonly config: AdaptersConfig;
  /** False: f is non-linear, so the adapters cannot be folded into W (see `export:merge`). */
  readonly mergeable: false;
  /** The adapted layers by module name, filled in when the model graph is built. */
  readonly adapted: ReadonlyMap<string, AdaptedLayer>;
  /** The graph inputs each adapted layer trains: down, up (and the scaling when learned). */
  parameterNames(module: string): string[];
}

export const MERGE_REFUSAL =
  'bottleneck adapters cannot be merged into the base weights: f(u) = up(act(down u)) is non-linear, so no single W ' +
  "computes W x + f(x). Set export.merged to 'auto' or false and use export/adapter, the PEFT folder that LLM-Adapters " +
  '(or bottleneckPeft) loads on top of the base model';

const sitesOf = (ctx: PluginContext): LinearSite[] =>
  ctx.model.specs.filter((s) => s.kind === 'linear' || s.kind === 'head').map((s) => {
    const name = s.name.replace(/\.weight$/, '');
    const layer = /\.layers\.(\d+)\./.exec(name);
    return { name, module: name.slice(name.lastIndexOf('.') + 1), layer: layer ? Number(layer[1]) : -1, inFeatures: s.shape[1]!, outFeatures: s.shape[0]! };
  });

export function adapters(options: AdaptersOptions = {}): Plugin<AdaptersApi> {
  const config = adaptersSchema.parse(options);
  const targets = targetsOf(config);
  const isTarget = targetMatcher(targets);
  const adapted = new Map<string, AdaptedLayer>();
  const masks = new Map<string, Shape>(); // dropout-mask inputs of the training graph and their (symbolic) shapes
  let clampLogged = false;

  const parameterNames = (module: string): string[] =>
    [downName(module), upName(module), ...(config.scaling === 'learned' ? [scalingName(module)] : [])];

  /** The layer's adapter; logs once when bottleneckSize had to be clamped. */
  const describe = (ctx: PluginContext, site: LinearSite): AdaptedLayer => {
    const placement = placementOf(config.kind, site);
    const { dIn, dOut } = adapterWidths(placement, site);
    const size = bottleneckOf(config.bottleneckSize, dIn, config.clampToWidth);
    if (size < config.bottleneckSize && !clampLogged) {
      clampLogged = true;
      const others = sitesOf(ctx).filter((s) => s.name !== site.name && isTarget(s))
        .filter((s) => adapterWidths(placementOf(config.kind, s), s).dIn < config.bottleneckSize).length;
      ctx.log(
        `bottleneckSize ${config.bottleneckSize} is larger than the width ${dIn} that the adapter of ${site.name} reads: ` +
          `using a bottleneck of ${dIn}${others ? ` (and the width on ${others} more adapted layer${others === 1 ? '' : 's'})` : ''}; ` +
          'set clampToWidth: false to keep the wider bottleneck',
      );
    }
    return { site, placement, dIn, dOut, size };
  };

  return {
    name: ADAPTERS,
    options: config,
    // f is non-linear: a merged export is skipped ('auto') or refused before the run (true).
    mergeable: false,
    api: { config, mergeable: false, adapted, parameterNames },

    'config:validate'(ctx) {
      if (sitesOf(ctx).some(isTarget)) return [];
      const modules = [...new Set(sitesOf(ctx).map((s) => s.module))];
      return [`targets ${JSON.stringify(targets)} match no linear layer of this model; its modules are ${modules.join(', ')}`];
    },

    'model:linear'(ctx, site, x, weight, bias, next) {
      if (!isTarget(site)) return next(site, x, weight, bias);
      const a = adapted.get(site.name) ?? describe(ctx, site);
      adapted.set(site.name, a);
      const g = x.builder;
      const down = g.input(downName(site.name), 'float32', [a.size, a.dIn]);
      const up = g.input(upName(site.name), 'float32', [a.dOut, a.size]);
      const scaling = config.scaling === 'learned' ? g.input(scalingName(site.name), 'float32', [1]) : config.scaling;
      const f = (u: Tensor): Tensor => {
        // Inverted dropout on the adapter's input only (the residual keeps u), masks fed per step to reproduce runs.
        if (config.dropout === 0 || ctx.phase !== 'train') return bottleneck(u, down, up, config.nonLinearity, scaling);
        masks.set(maskName(site.name), u.shape);
        const dropped = op.mul(u, g.input(maskName(site.name), 'float32', u.shape));
        return bottleneck(dropped, down, up, config.nonLinearity, scaling);
      };
      switch (a.placement) {
        case 'input': return next(site, op.add(x, f(x)), weight, bias); // y = W (x + f(x)) + b
        case 'output': {
          const h = next(site, x, weight, bias); // [..., out]
          return op.add(h, f(h));
        }
        case 'parallel': return op.add(next(site, x, weight, bias), f(x));
      }
    },

    'params:init'(ctx, pending) {
      const values = new Map<string, HostTensor>();
      for (const p of pending) {
        const module = p.name.replace(/\.(adapter_down\.weight|adapter_up\.weight|adapter_scaling)$/, '');
        if (module === p.name || !adapted.has(module)) continue;
        const shape = p.shape as [number, number];
        if (p.name === downName(module)) values.set(p.name, initDown(config.init, shape, ctx.run.seed, p.name));
        else if (p.name === upName(module)) values.set(p.name, initUp(config.init, shape, ctx.run.seed, p.name));
        else values.set(p.name, initScaling());
      }
      return values;
    },

    'params:trainable'(_ctx, current) {
      return new Set([...current, ...[...adapted.keys()].flatMap(parameterNames)]);
    },

    'step:feeds'(ctx) {
      if (config.dropout === 0) return;
      const keep = 1 - config.dropout;
      const feeds: Record<string, HostTensor> = {};
      for (const [name, symbolic] of masks) {
        const shape = resolveShape(symbolic, ctx.dims); // [B, T, width]
        const mask = new Float32Array(shape.reduce((a, d) => a * d, 1));
        for (let i = 0; i < mask.length; i++) mask[i] = ctx.random() < keep ? 1 / keep : 0;
        feeds[name] = hostTensor('float32', shape, mask);
      }
      return feeds;
    },

    'export:merge'() {
      throw new Error(MERGE_REFUSAL);
    },

    async 'export:artifacts'(ctx, dir, trained) {
      const tensors = new Map<string, HostTensor>();
      for (const module of adapted.keys()) {
        for (const name of parameterNames(module)) {
          const t = trained.get(name);
          if (!t) throw new Error(`adapters export: no trained value for '${name}'`);
          tensors.set(name, t);
        }
      }
      const layers = [...adapted.values()];
      const modules = [...new Set(layers.map((a) => a.site.module))];
      // One size for every layer (the usual case, also when all were clamped alike) is what the fork needs to load
      // the folder; otherwise the requested size, and each tensor carries its own.
      const sizes = new Set(layers.map((a) => a.size));
      const size = sizes.size === 1 ? [...sizes][0]! : config.bottleneckSize;
      if (sizes.size > 1) ctx.log(`adapters export: bottleneck sizes differ across layers (${[...sizes].join(', ')}); bottleneck_size records ${size}, the tensors their own`);
      const baseModel = (ctx.model.config.raw._name_or_path as string | undefined) ?? null;
      return writeBottleneckAdapter(`${dir}/adapter`, peftConfig(config, targets, modules, size, baseModel), tensors);
    },
  };
}

export { adaptersSchema, DEFAULT_TARGETS, NON_LINEARITIES, type AdaptersConfig, type AdaptersOptions, type NonLinearity } from './config.ts';
export { bottleneckPeft } from './peft.ts';
