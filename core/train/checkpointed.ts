/** Backpropagation with activation checkpointing: runs the stages of `checkpointPlan` in order (see there). */
import { actName, checkpointPlan, type CheckpointPlan } from '../autodiff/checkpoint.ts';
import { gradName } from '../autodiff/vjp.ts';
import type { HostTensor } from '../ir/host.ts';
import type { EstimatorStep, GradientEstimator } from '../plugin/estimator.ts';

function addInto(target: Float32Array, src: Float32Array): void {
  for (let i = 0; i < target.length; i++) target[i] = target[i]! + src[i]!;
}

export function checkpointedBackprop(): GradientEstimator {
  let cached: { key: string; plan: CheckpointPlan } | undefined;
  return {
    name: 'backprop+checkpointing',
    async estimate(s: EstimatorStep) {
      const key = s.trainable.join(',');
      if (cached?.key !== key) cached = { key, plan: checkpointPlan(s.forward, s.boundaries, s.trainable) };
      const { plan } = cached;
      const lookup = (name: string, extra: Record<string, HostTensor>): HostTensor => {
        const t = s.feeds[name] ?? extra[name] ?? s.ctx.params.get(name);
        if (!t) throw new Error(`checkpointing: no value for input '${name}'`);
        return t;
      };
      const fwd = await s.compile(plan.forward, `ckpt|fwd|${key}`);
      const fwdFeeds: Record<string, HostTensor> = {};
      for (const i of fwd.inputs) fwdFeeds[i.name] = lookup(i.name, {});
      const out = await fwd.run(fwdFeeds);
      const loss = Number(out.loss!.data[0]);
      const acts: Record<string, HostTensor> = {};
      for (const [name, t] of Object.entries(out)) if (name.startsWith('act:')) acts[name] = t;
      const cts = new Map<number, HostTensor>();
      const grads = new Map<string, Float32Array>();

      for (const [k, stage] of plan.stages.entries()) {
        const exe = await s.compile(stage.graph, `ckpt|${k}|${key}`);
        const feeds: Record<string, HostTensor> = {};
        for (const i of exe.inputs) {
          if (i.name.startsWith('ct:')) {
            const id = Number(i.name.slice(3));
            feeds[i.name] = cts.get(id) ?? { dtype: i.dtype, shape: i.dims, data: new Float32Array(i.dims.reduce((a, b) => a * b, 1)) };
          } else feeds[i.name] = lookup(i.name, acts);
        }
        const r = await exe.run(feeds);
        for (const id of stage.cotangents) cts.delete(id); // consumed
        for (const p of stage.params) {
          const g = r[gradName(p)]!.data as Float32Array;
          const prev = grads.get(p);
          if (prev) addInto(prev, g);
          else grads.set(p, g);
        }
        for (const id of stage.actGrads) {
          const g = r[gradName(actName(id))]!;
          const prev = cts.get(id);
          if (prev) addInto(prev.data as Float32Array, g.data as Float32Array);
          else cts.set(id, g);
        }
        for (const [id, last] of plan.lastReader) if (last === k) delete acts[actName(id)]; // no later stage reads it
      }
      return { loss, grads };
    },
  };
}

