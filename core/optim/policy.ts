/**
 * Per-parameter groups: which parameters get weight decay.
 *
 * The usual recipe for transformers (GPT-2, Llama, Hugging Face `Trainer`) puts biases and normalisation weights in
 * a group without weight decay. Here a group is decided per parameter by a predicate over its name and shape.
 */

/** Says whether weight decay applies to a parameter. `shape` is undefined when the optimizer was not told it. */
export type DecayPredicate = (name: string, shape: readonly number[] | undefined) => boolean;

/** Names of parameters that are never decayed by the default policy (normalisation weights and biases). */
export const NO_DECAY_NAME = /norm|bias/i;

/**
 * Default policy: no weight decay on tensors of rank 0 or 1 (norm scales, biases) nor on names matching
 * `/norm|bias/i`; decay on everything else. When the shape is unknown only the name rule applies, so give the
 * optimizer the shapes (`ParamPolicy.shapes` or `setShape`) when using `step` with this policy.
 */
export const defaultDecayPolicy: DecayPredicate = (name, shape) => {
  if (shape !== undefined && shape.length <= 1) return false;
  return !NO_DECAY_NAME.test(name);
};

/** Decays every parameter (what `torch.optim.AdamW(model.parameters())` does without groups). */
export const decayAll: DecayPredicate = () => true;

/** Shapes of parameters by name, as a Map or a plain record. */
export type ShapeTable = ReadonlyMap<string, readonly number[]> | Readonly<Record<string, readonly number[]>>;

/** How an optimizer groups its parameters (second constructor argument of `AdamW` and `SGD`). */
export interface ParamPolicy {
  /** Parameter shapes, used by the decay predicate. More can be added later with `setShape`. */
  shapes?: ShapeTable;
  /** Decides weight decay per parameter; default `defaultDecayPolicy`. */
  decay?: DecayPredicate;
}

/** Copies a shape table into a Map. */
export function shapeMap(shapes: ShapeTable | undefined): Map<string, readonly number[]> {
  const out = new Map<string, readonly number[]>();
  if (!shapes) return out;
  const entries = shapes instanceof Map ? shapes.entries() : Object.entries(shapes);
  for (const [name, shape] of entries) out.set(name, [...shape]);
  return out;
}
