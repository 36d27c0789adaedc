import type { HostTensor } from '../core/ir/host.ts';
import type { NodeOrigin } from '../core/onnx/lower.ts';
import type { OnnxValueInfo } from '../core/onnx/model.ts';

/**
 * A compiled step as a runner receives it: ONNX bytes (or a path, when the weights live in an external data file
 * next to it) and the names and types of what is fed and returned.
 */
export interface CompiledStep {
  readonly model: { bytes: Uint8Array } | { path: string };
  readonly inputs: readonly OnnxValueInfo[];
  readonly outputs: readonly OnnxValueInfo[];
  /** Maps ONNX node names back to the IR equation that produced them, for error messages. */
  readonly origins: ReadonlyMap<string, NodeOrigin>;
}

/** A loaded step: feed named host tensors, get named host tensors back. */
export interface RunnerSession {
  run(feeds: Readonly<Record<string, HostTensor>>, options?: RunOptions): Promise<Record<string, HostTensor>>;
  release(): Promise<void>;
}

export interface RunOptions {
  /**
   * Outputs to write into these tensors (same dtype and shape) rather than into new ones: no output buffer is
   * allocated for them, which for large outputs (an update's new weights) saves their page faults and a copy. A
   * runner that can write there does (onnxruntime-node: pre-allocated outputs); `compile`'s `run` copies the rest.
   * Such a tensor may be the array of an input only where the graph has read that input when it writes the output,
   * at the same element (the optimizer's update graphs are built so).
   */
  into?: Readonly<Record<string, HostTensor>>;
}

/** Where compiled steps run. Implementations: onnxruntime-node (CPU), later onnxruntime-web, WebGPU, a sidecar. */
export interface Runner {
  readonly name: string;
  /**
   * Set where sessions live away from this process (a sidecar, a GPU's memory): the trainer then compiles the
   * tensors that stay the same between runs (frozen weights) into each step as resident initializers, sent once at
   * load, instead of feeding them to every run. Runners in this process leave it unset: for them a resident copy
   * would hold every frozen weight twice.
   */
  readonly residentWeights?: boolean;
  /**
   * Set where `load(step, { feedback })` keeps the fed-back outputs where the session runs (a GPU's memory, the
   * sidecar), so state fed back does not cross to this process between runs (runners/holding.ts). A runner without
   * it ignores `feedback`; `compile()` then holds them in this process.
   */
  readonly holdsOutputs?: boolean;
  /**
   * Set where sessions loaded with the same `store` id share what they hold (the sidecar): a step of any batch shape
   * reads the parameters an update session wrote, there. `compile({ store })` needs it on runners that hold outputs.
   */
  readonly sharesStores?: boolean;
  load(step: CompiledStep, options?: LoadOptions): Promise<RunnerSession>;
}

export interface LoadOptions {
  /** `{ output: input }` pairs to hold between runs, on runners with `holdsOutputs` (added to the runner's own). */
  feedback?: Readonly<Record<string, string>>;
  /** On runners with `sharesStores`: hold in the store of this id, shared with the other sessions loaded with it. */
  store?: string;
  /**
   * Fed-back outputs a run may write over the held tensor they replace, when the run was served that tensor: the
   * graph reads every element of the input before it writes that element of the output (an optimizer's moments;
   * parameters after a global-norm barrier). The state then takes its size once, not twice, during a run.
   */
  inPlace?: readonly string[];
}

/** Rewrites a runtime error so it names the IR op and shapes behind the failing ONNX node. */
export function explainRuntimeError(e: unknown, step: CompiledStep, phase: string): Error {
  const message = e instanceof Error ? e.message : String(e);
  const hits: string[] = [];
  for (const [node, origin] of step.origins) {
    if (new RegExp(`\\b${node}\\b`).test(message)) hits.push(`node '${node}' comes from equation ${origin.eqnIndex}: ${origin.signature}`);
  }
  const detail = hits.length ? `\n  ${hits.join('\n  ')}` : '';
  return new Error(`onnxruntime failed to ${phase}: ${message}${detail}`, { cause: e });
}
