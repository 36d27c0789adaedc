/**
 * Measured constants of the runtime, on the CPU runner (onnxruntime-node 1.30, Bun 1.4, Linux x86-64), for what a
 * training process holds besides its tensors (weights, gradients, optimizer state, the step's activations):
 * - RUNTIME_BASE: what does not grow with the model's graphs: Bun, onnxruntime and the libraries (86-90 MB of VmRSS
 *   after the imports and a first run of a small session) plus the trainer's own state (planner, tokenizer, data,
 *   reports: ~30 MB more).
 * - SESSION_BYTES_PER_EQN: what grows with the graphs, per IR equation of the compiled step graphs: the graphs in
 *   JavaScript (forward, gradient, specialised) and each session's graph, kernels and plans in onnxruntime.
 * Both are the intercept and slope of a least-squares line through the peak (VmHWM) of real 3-step runs at a tiny
 * batch (B=1, T=16, so activations are negligible) minus the planned tensors and folded constants, against the
 * equation count; two runs each, `bun run benchmarks/lib/memory-run.ts '{"name":"x","model":<dir>,"method":<m>,
 * "checkpointing":<c>,"B":1,"T":16,"steps":3}'`:
 *   stories260k      full plain 895 eqns 123 MB, ckpt 1196: 137 MB; LoRA plain 876: 125 MB, ckpt 1220: 138 MB
 *   SmolLM2-135M     full plain 4970 eqns 196 MB, ckpt 6521: 197 MB; LoRA plain 5076: 216 MB, ckpt 6920: 201 MB
 *   -> 119 MB + 14.2 KB per equation (residuals within 27 MB).
 * Re-measure them when the runtime changes; `bench:memory` reports how well the whole prediction holds.
 */
export const RUNTIME_BASE = 118 * 2 ** 20;
export const SESSION_BYTES_PER_EQN = 14 * 1024;
/**
 * Each further batch shape of a graph already compiled costs this share of the first session's bytes: the graph in
 * JavaScript is shared, and a new session's allocations largely reuse memory freed after the earlier compiles.
 * Measured on stories260k with LoRA (1,261-equation step graph, 17 MiB planned per session): compiling and running it
 * at B=16 and T = 32, 48, …, 192 grew the resident set by 44 MiB for the first shape and 13.3 MiB per further shape
 * on average (0.77); in the SST-2 run (bun run finetune), 8 further training shapes after the baseline evaluation
 * added 84 MiB (0.6). Between the two: 0.7.
 */
export const SESSION_REPEAT_FRACTION = 0.7;
