/** Which of a model's tensors LISA trains always, and which belong to each decoder layer it may draw. */
import type { PluginContext } from '../../core/index.ts';
import type { LisaConfig } from './config.ts';

/** How the model's tensors fall into LISA's groups. */
export interface Layout {
  candidates: number[];
  /** Tensor names of each decoder layer, by layer index. */
  layerTensors: Map<number, string[]>;
  always: string[];
  alwaysNote: string;
}

const LAYER_NAME = /^model\.layers\.(\d+)\./;

export function layoutOf(ctx: PluginContext, config: LisaConfig): Layout {
  const { specs } = ctx.model;
  const tied = ctx.model.config.tieWordEmbeddings;
  const layerTensors = new Map<number, string[]>();
  const always: string[] = [];
  const notes: string[] = [];
  for (const spec of specs) {
    const m = LAYER_NAME.exec(spec.name);
    if (m) {
      const layer = Number(m[1]);
      layerTensors.set(layer, [...(layerTensors.get(layer) ?? []), spec.name]);
    } else if (spec.kind === 'embedding' && (config.trainEmbeddings || (tied && config.trainHead))) {
      always.push(spec.name);
      notes.push(tied ? `${spec.name} (embeddings = tied head)` : spec.name);
    } else if (spec.kind === 'head' && config.trainHead) {
      always.push(spec.name);
      notes.push(spec.name);
    } else if (spec.kind === 'norm' && config.trainFinalNorm) {
      always.push(spec.name);
      notes.push(spec.name);
    }
  }
  const candidates = config.layers ? [...config.layers].sort((a, b) => a - b) : [...layerTensors.keys()].sort((a, b) => a - b);
  return { candidates, layerTensors, always, alwaysNote: notes.length ? notes.join(', ') : 'nothing' };
}
