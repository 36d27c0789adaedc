/**
 * Measured constants of the runtime, on the CPU runner (onnxruntime-node 1.30, Bun 1.4, Linux x86-64):
 * - RUNTIME_BASE: resident memory of a process that has loaded the trainer, onnxruntime and one small session
 *   (87 MB; measured by reading VmRSS after the imports and a first session run, twice, same figure).
 * - SESSION_BYTES_PER_EQN: what a compiled session keeps beyond its folded constants, per IR equation of the graph
 *   (graph structures, kernel state): ~90 MB for the ~5,000-equation SmolLM2-135M gradient graph, i.e. ~18 KB each.
 * Re-measure them when the runtime changes; `bench:memory` reports how well the whole prediction holds.
 */
export const RUNTIME_BASE = 87 * 2 ** 20;
export const SESSION_BYTES_PER_EQN = 18 * 1024;
