import type { HostTensor } from '../ir/host.ts';
import type { Graph, Var } from '../ir/graph.ts';
import type { Executable } from '../compile.ts';
import type { StepContext } from './context.ts';

/** What the trainer hands an estimator for one micro-batch. */
export interface EstimatorStep {
  ctx: StepContext;
  /** The forward graph: outputs `loss`; inputs are parameters, `input_ids`, `labels` and plugin feeds. */
  forward: Graph;
  /** Compiles a graph for this batch's shapes (cached by the trainer). */
  compile(graph: Graph, key: string): Promise<Executable>;
  /** Batch and plugin feeds (not parameters). */
  feeds: Record<string, HostTensor>;
  /** Trainable parameter names, in a fixed order. */
  trainable: readonly string[];
  /** Values of `forward` where activation checkpointing may cut (block outputs). */
  boundaries: readonly Var[];
}

/**
 * How gradients (or updates) are obtained for a micro-batch. Backpropagation is the default; zeroth-order and
 * forward-gradient plugins return their own from `step:estimator`.
 */
export interface GradientEstimator {
  name: string;
  /**
   * Returns the loss and gradients for the trainable parameters (the trainer applies the optimizer), or
   * `applied: true` when the estimator updated the parameters itself.
   */
  estimate(step: EstimatorStep): Promise<{ loss: number; grads?: Map<string, Float32Array>; applied?: boolean }>;
}
