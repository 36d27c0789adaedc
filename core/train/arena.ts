/**
 * memory.arena: a run whose steps run in this process gets a runner whose sessions share one onnxruntime memory
 * arena (runners/ort-node.ts `sharedArena`). Without it every intermediate of a step is its own memory mapping
 * (memory.mmapThreshold), unmapped when freed and page-faulted in again by the next step: on a SmolLM2-135M full
 * fine-tuning step that is about a fifth of the time. With it the memory is reused, and the arena's free space adds
 * to the peak (docs/memory-planner.md has the figures).
 */
import type { TrainOptions } from './run-options.ts';

/** `opts` with the shared-arena runner when memory.arena asks for it and no runner was given. */
export async function withArenaRunner(opts: TrainOptions, log: (line: string) => void): Promise<TrainOptions> {
  if (!opts.config.memory.arena) return opts;
  if (opts.runner) {
    log(`memory.arena: not used, the steps run on ${opts.runner.name} (the arena is for sessions in this process)`);
    return opts;
  }
  const { ortNodeRunner } = await import('../../runners/ort-node.ts');
  const { ortFfiUnavailable } = await import('../../runners/ort-ffi.ts');
  const why = await ortFfiUnavailable();
  if (why) throw new Error(`memory.arena needs onnxruntime's C API (${why}): run under Bun, or set memory.arena to false`);
  log('memory.arena: one onnxruntime memory arena for the run\'s sessions; freed memory is kept for the next step, so the peak is above the plan (by ~15% on SmolLM2-135M full fine-tuning, ~50% with optimizerOn \'device\')');
  return { ...opts, runner: ortNodeRunner({ sharedArena: true }) };
}
