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
  /** Learning rate of this step (estimators that update parameters themselves use it). */
  lr: number;
  /** Values of `forward` where activation checkpointing may cut (block outputs). */
  boundaries: readonly Var[];
}

/**
 * How gradients (or updates) are obtained for a micro-batch. Backpropagation is the default; zeroth-order and
 * forward-gradient plugins return their own from `step:estimator`.
 */
export interface EstimatorMemory {
  /** The graphs one step runs, built from the forward graph (their largest peak is the step's). */
  graphs(forward: Graph, trainable: readonly string[]): Graph[];
  /** Whether the trainer holds gradients and optimizer state for this estimator (false when it updates by itself). */
  gradients: boolean;
  /** Extra host memory per trainable parameter (momentum buffers, tangent vectors), in bytes. */
  extraBytesPerTrainableParam?: number;
  /** What the extra memory is, for the plan's table. */
  extraNote?: string;
}

export interface GradientEstimator {
  name: string;
  /** For the memory planner; when absent the estimator is planned as backpropagation. */
  memory?: EstimatorMemory;
  /**
   * Returns the loss and gradients for the trainable parameters (the trainer applies the optimizer), or
   * `applied: true` when the estimator updated the parameters itself.
   */
  estimate(step: EstimatorStep): Promise<{ loss: number; grads?: Map<string, Float32Array>; applied?: boolean }>;
}
