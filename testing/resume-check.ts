/** Kill and resume: a run stopped after a checkpoint and resumed ends with the weights of the uninterrupted run, bit for bit. */
import { join } from 'node:path';
import type { HostTensor, Plugin } from '../core/index.ts';
import { train } from '../core/train/trainer.ts';
import { KitError } from './errors.ts';
import { kitConfig, kitModel, quietLog, scratchDir, type KitModelOptions } from './run-model.ts';

export interface ResumeCheckOptions extends KitModelOptions {
  plugins: () => Plugin[];
  /** Steps of the run (default 8), checkpoints every `every` (default 3), stopped after `stopAfter` (default 5). */
  steps?: number;
  every?: number;
  stopAfter?: number;
}

const silent = { write: () => true, isTTY: false };

/** Names of tensors whose shapes or bytes differ between two maps (and those only one of them has, so labelled). */
export function bitDifferences(a: ReadonlyMap<string, HostTensor>, b: ReadonlyMap<string, HostTensor>): string[] {
  const out: string[] = [];
  for (const name of new Set([...a.keys(), ...b.keys()])) {
    const x = a.get(name), y = b.get(name);
    if (!x || !y) {
      out.push(`${name} (only in one)`);
      continue;
    }
    const bx = new Uint8Array(x.data.buffer, x.data.byteOffset, x.data.byteLength);
    const by = new Uint8Array(y.data.buffer, y.data.byteOffset, y.data.byteLength);
    if (x.shape.join() !== y.shape.join() || bx.length !== by.length || bx.some((v, i) => v !== by[i])) out.push(name);
  }
  return out;
}

export async function expectResumeExact(o: ResumeCheckOptions): Promise<{ tensors: number }> {
  const model = await kitModel(o);
  const dir = scratchDir('resume');
  const over = { train: { steps: o.steps ?? 8 }, checkpoint: { every: o.every ?? 3 } };
  const straight = await train({ config: kitConfig(model, join(dir, 'straight'), over), plugins: o.plugins(), progress: silent, log: quietLog });
  const cfg = kitConfig(model, join(dir, 'interrupted'), over);
  const first = await train({ config: cfg, plugins: o.plugins(), progress: silent, log: quietLog, stopAfterSteps: o.stopAfter ?? 5 });
  if (first.finished) throw new KitError('resume check: the run finished before it could be interrupted (raise steps)');
  const second = await train({ config: cfg, plugins: o.plugins(), progress: silent, log: quietLog });
  const moved = bitDifferences(first.trained, straight.trained);
  if (moved.length === 0) throw new KitError('resume check: the weights did not change during training, so the comparison would prove nothing');
  const diff = bitDifferences(second.trained, straight.trained);
  if (diff.length) throw new KitError(`resume check: after kill and resume, ${diff.length} tensors differ from the uninterrupted run: ${diff.slice(0, 5).join(', ')} (is all of the plugin's state in state:save / state:load?)`);
  return { tensors: straight.trained.size };
}
