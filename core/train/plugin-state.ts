/**
 * Plugin state in checkpoints: plugins may hold tensors in their state (e.g. momentum buffers, an importance EMA);
 * those go to the checkpoint's tensor file under `plugin/<name>/<key>`, the rest to its JSON state.
 */
import type { HostTensor } from '../ir/host.ts';

export const PLUGIN_TENSOR_PREFIX = 'plugin/';

const isHostTensor = (v: unknown): v is HostTensor =>
  typeof v === 'object' && v !== null && 'dtype' in v && 'shape' in v && ArrayBuffer.isView((v as HostTensor).data);

/** Moves the tensors of a plugin's state into `tensors`, leaving `{ $tensor: key }` references in the JSON part. */
export function splitPluginState(plugin: string, state: Record<string, unknown>, tensors: Map<string, HostTensor>): Record<string, unknown> {
  const json: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(state)) {
    if (isHostTensor(v)) {
      tensors.set(`${PLUGIN_TENSOR_PREFIX}${plugin}/${k}`, v);
      json[k] = { $tensor: `${PLUGIN_TENSOR_PREFIX}${plugin}/${k}` };
    } else json[k] = v;
  }
  return json;
}

/** The inverse of {@link splitPluginState}. */
export function joinPluginState(plugin: string, state: Record<string, unknown>, tensors: ReadonlyMap<string, HostTensor>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(state)) {
    const ref = typeof v === 'object' && v !== null && '$tensor' in v ? (v as { $tensor: string }).$tensor : undefined;
    out[k] = ref !== undefined ? tensors.get(ref) : v;
    if (ref !== undefined && !tensors.has(ref)) throw new Error(`checkpoint: state of plugin '${plugin}' refers to missing tensor ${ref}`);
  }
  return out;
}
