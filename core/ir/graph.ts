import type { DType } from './dtype.ts';
import { assertDType } from './dtype.ts';
import type { Shape } from './shape.ts';
import { formatShape, normDim } from './shape.ts';
import type { Primitive } from './primitive.ts';

/** The static type of a value: element type and shape (dims may be symbolic). */
export interface TensorType {
  readonly dtype: DType;
  readonly shape: Shape;
}

/** A value in a graph. Identity is the id; a Var is defined once, by a graph input or an equation. */
export interface Var extends TensorType {
  readonly id: number;
}

/** One application of a primitive: `out = prim(inputs; params)`. Plain data. */
export interface Eqn<P extends object = object> {
  readonly prim: Primitive<P>;
  readonly inputs: readonly Var[];
  readonly out: Var;
  readonly params: P;
}

export interface NamedVar {
  readonly name: string;
  readonly v: Var;
}

/** A computation as plain data: named inputs, equations in execution order, named outputs. */
export interface Graph {
  readonly inputs: readonly NamedVar[];
  readonly eqns: readonly Eqn[];
  readonly outputs: readonly NamedVar[];
}

/** Raised when an op is applied to values it cannot take; says which op, the input types and what is wrong. */
export class GraphError extends Error {
  constructor(
    readonly op: string,
    readonly inputTypes: readonly TensorType[],
    readonly reason: string,
  ) {
    const types = inputTypes.map((t) => `${t.dtype}${formatShape(t.shape)}`).join(', ');
    super(`${op}(${types}): ${reason}`);
    this.name = 'GraphError';
  }
}

/**
 * A handle on a value while a graph is being built. Ops take Tensors and return Tensors; the equations are
 * recorded in the builder that owns the inputs.
 */
export class Tensor implements TensorType {
  constructor(
    readonly builder: GraphBuilder,
    readonly v: Var,
  ) {}
  get dtype(): DType { return this.v.dtype; }
  get shape(): Shape { return this.v.shape; }
  get rank(): number { return this.v.shape.length; }
  toString(): string { return `%${this.v.id}:${this.dtype}${formatShape(this.shape)}`; }
}

/** Records equations. Every graph, including the ones autodiff produces, is built through one of these. */
export class GraphBuilder {
  readonly inputs: NamedVar[] = [];
  readonly eqns: Eqn[] = [];
  private nextId = 0;
  private readonly producers = new Map<number, Eqn>();

  /** The equation that defined a tensor (undefined for graph inputs). Used by peephole simplifications. */
  producer(t: Tensor): Eqn | undefined {
    return this.producers.get(t.v.id);
  }

  newVar(type: TensorType): Var {
    return { id: this.nextId++, dtype: type.dtype, shape: type.shape.map(normDim) };
  }

  /** Declares a named graph input. */
  input(name: string, dtype: DType, shape: Shape): Tensor {
    assertDType(dtype, `input '${name}'`);
    if (this.inputs.some((i) => i.name === name)) throw new Error(`input '${name}' is declared twice`);
    const v = this.newVar({ dtype, shape });
    this.inputs.push({ name, v });
    return new Tensor(this, v);
  }

  /** Applies a primitive: checks the inputs with its shape rule, then records the equation. */
  bind<P extends object>(prim: Primitive<P>, inputs: readonly Tensor[], params: P): Tensor {
    for (const t of inputs) {
      if (t.builder !== this) {
        throw new GraphError(prim.name, inputs, 'inputs come from different graph builders; build one graph at a time');
      }
    }
    const types = inputs.map((t) => t.v);
    let outType: TensorType;
    try {
      outType = prim.infer(types, params);
    } catch (e) {
      if (e instanceof GraphError) throw e;
      throw new GraphError(prim.name, types, (e as Error).message);
    }
    const out = this.newVar(outType);
    const eqn: Eqn = { prim: prim as Primitive<object>, inputs: types, out, params };
    this.eqns.push(eqn);
    this.producers.set(out.id, eqn);
    return new Tensor(this, out);
  }

  wrap(v: Var): Tensor { return new Tensor(this, v); }

  /** Finishes the graph with named outputs. */
  build(outputs: Readonly<Record<string, Tensor>>): Graph {
    const outs = Object.entries(outputs).map(([name, t]) => {
      if (!(t instanceof Tensor) || t.builder !== this) throw new Error(`output '${name}' is not a tensor of this graph`);
      return { name, v: t.v };
    });
    return { inputs: [...this.inputs], eqns: [...this.eqns], outputs: outs };
  }
}

/** Builds a graph with a callback: `trace(g => { const x = g.input(...); return { y: exp(x) } })`. */
export function trace(fn: (g: GraphBuilder) => Record<string, Tensor>): Graph {
  const g = new GraphBuilder();
  return g.build(fn(g));
}
