/**
 * Measured constants of the runtime, on the CPU runner (onnxruntime-node 1.30, Bun 1.4, Linux x86-64), for what a
 * training process holds besides its tensors (weights, gradients, optimizer state, the step's activations):
 * - RUNTIME_BASE: what does not grow with the model's graphs: Bun, onnxruntime and the libraries (86-90 MB of VmRSS
 *   after the imports and a first run of a small session) plus the trainer's own state (planner, tokenizer, data,
 *   reports: ~30 MB more).
 * - the compiled sessions: what grows with the graphs: the graphs in JavaScript (forward, gradient, specialised), each
 *   session's graph, kernels and plans in onnxruntime, and the transient of building them (the first step's peak).
 * Fitted by least squares on the peak (VmHWM) of real 3-step runs at a tiny batch (B=1, T=16, so activations are
 * negligible) minus everything else the plan counts (RUNTIME_BASE included), with the commands
 * `bun run benchmarks/lib/memory-run.ts '{"name":"x","model":<dir>,"method":<m>,"checkpointing":<c>,"B":1,"T":16,
 * "steps":3}'` (P-tuning's LSTM at 1, 20 and 60 virtual tokens through `pTuning({ virtualTokens, encoder: 'lstm' })`
 * in the same harness), two runs each, after the compile-time fixes of core/ir/shape.ts and core/compile.ts. Residual
 * in MiB; nodes = ONNX nodes of the step graphs; fixed = MiB of equation results of fixed (parameter) shape:
 *   stories260k    full plain 1,138 nodes, fixed 1.1: 9.6, 8.2;  ckpt 1,582, 1.2: 10.4, 13.0
 *                  LoRA plain 1,185, 0.0: 5.0, 9.8;  ckpt 1,712, 0.0: 14.8, 12.9
 *                  P-tuning LSTM 1 / 20 / 60 tokens: 1,214 / 5,554 / 14,674 nodes, fixed 0.8 / 14.7 / 63.5:
 *                  11.7, 11.3 / 37.7, 39.9 / 92.1, 93.3
 *   SmolLM2-135M   full plain 6,338, 621: 64.5, 62.7;  LoRA plain 6,910, 1.8: 49.5, 47.3;  ckpt 9,787, 1.8: 76.6, 78.3
 *                  P-tuning LSTM 20 / 60: 10,129 / 19,249 nodes, fixed 832 / 2,711: 98.3, 97.8 / 236.8, 239.8
 *                  (full ckpt, 8,682 nodes: 287, 290, left out: its peak is not the sessions', see docs)
 * - one slope per equation (SESSION_BYTES_PER_EQN, what plan.ts charges today): 11.4 KiB per equation, intercept
 *   -3 MiB, residuals up to 62 MiB: P-tuning's LSTM equations are tiny on stories260k (about 7 KiB each) and not on
 *   SmolLM2-135M (about 15 KiB), which one slope cannot follow;
 * - per ONNX node plus per fixed-shape byte (sessionBytes): 6.7 KiB per node + 4.0% of the fixed-shape bytes,
 *   intercept 1.9 MiB (kept in RUNTIME_BASE), residuals within 12.6 MiB (rms 4.6) on both widths.
 * Re-measure them when the runtime changes; `bench:memory` reports how well the whole prediction holds.
 */
export const RUNTIME_BASE = 118 * 2 ** 20;
/** The single-slope session model plan.ts uses (see above); sessionBytes is the better fit. */
export const SESSION_BYTES_PER_EQN = 11 * 1024;
/** Session bytes per ONNX node of a compiled graph (see above). */
export const SESSION_BYTES_PER_NODE = 6830;
/** Session bytes per byte of the graph's fixed-shape equation results (see above). */
export const SESSION_FIXED_BYTES_FRACTION = 0.04;

/**
 * What one compiled session of a graph costs (besides its folded constants): `nodes` from `simulateLiveness(g).nodes`
 * on the specialised graph, `fixedBytes` from `fixedShapeBytes` on the symbolic one (liveness.ts).
 */
export function sessionBytes(nodes: number, fixedBytes: number): number {
  return SESSION_BYTES_PER_NODE * nodes + SESSION_FIXED_BYTES_FRACTION * fixedBytes;
}
/**
 * Each further batch shape of a graph already compiled costs this share of the first session's bytes: the graph in
 * JavaScript is shared, and a new session's allocations largely reuse memory freed after the earlier compiles.
 * Measured on stories260k with LoRA (1,261-equation step graph, 17 MiB planned per session): compiling and running it
 * at B=16 and T = 32, 48, …, 192 grew the resident set by 44 MiB for the first shape and 13.3 MiB per further shape
 * on average (0.77); in the SST-2 run (bun run finetune), 8 further training shapes after the baseline evaluation
 * added 84 MiB (0.6). Between the two: 0.7.
 */
export const SESSION_REPEAT_FRACTION = 0.7;
