/**
 * Dimensions are numbers or symbolic products such as `B` or `B*T`, resolved to numbers when a graph is compiled.
 * A symbolic dim is kept in a canonical form (coefficient first, names sorted) so that equal products compare equal.
 */
export type Dim = number | string;
export type Shape = readonly Dim[];

interface Monomial { coef: number; names: string[] }

function parseDim(d: Dim): Monomial {
  if (typeof d === 'number') return { coef: d, names: [] };
  let coef = 1;
  const names: string[] = [];
  for (const raw of d.split('*')) {
    const part = raw.trim();
    if (/^\d+$/.test(part)) coef *= Number(part);
    else if (/^[A-Za-z_][A-Za-z0-9_]*$/.test(part)) names.push(part);
    else throw new TypeError(`invalid symbolic dimension ${JSON.stringify(d)}: use names and integers joined by '*'`);
  }
  return { coef, names: names.sort() };
}

function formatMonomial(m: Monomial): Dim {
  if (m.names.length === 0) return m.coef;
  return (m.coef === 1 ? [] : [String(m.coef)]).concat(m.names).join('*');
}

/** Canonical form of a dim: `'T*B'` becomes `'B*T'`, `'4'` becomes 4. */
export function normDim(d: Dim): Dim {
  return formatMonomial(parseDim(d));
}

export function mulDims(a: Dim, b: Dim): Dim {
  const x = parseDim(a), y = parseDim(b);
  return formatMonomial({ coef: x.coef * y.coef, names: [...x.names, ...y.names].sort() });
}

export function dimEq(a: Dim, b: Dim): boolean {
  return normDim(a) === normDim(b);
}

export function shapeEq(a: Shape, b: Shape): boolean {
  return a.length === b.length && a.every((d, i) => dimEq(d, b[i]!));
}

export function numel(shape: Shape): Dim {
  return shape.reduce<Dim>((acc, d) => mulDims(acc, d), 1);
}

export function isConcrete(shape: Shape): shape is readonly number[] {
  return shape.every((d) => typeof d === 'number');
}

export function formatShape(shape: Shape): string {
  return `[${shape.join(',')}]`;
}

/** Substitutes symbol values; throws naming the symbol when one is missing. */
export function resolveDim(d: Dim, bindings: Readonly<Record<string, number>>): number {
  const m = parseDim(d);
  let v = m.coef;
  for (const n of m.names) {
    const b = bindings[n];
    if (b === undefined) {
      throw new Error(`symbolic dimension '${n}' has no value: pass it in dims, e.g. { ${n}: 8 }`);
    }
    v *= b;
  }
  return v;
}

export function resolveShape(shape: Shape, bindings: Readonly<Record<string, number>>): number[] {
  return shape.map((d) => resolveDim(d, bindings));
}

/** NumPy/ONNX broadcasting of two shapes; returns null when they cannot broadcast. */
export function broadcastShapes(a: Shape, b: Shape): Dim[] | null {
  const rank = Math.max(a.length, b.length);
  const out: Dim[] = [];
  for (let i = 0; i < rank; i++) {
    const da = a[a.length - rank + i] ?? 1;
    const db = b[b.length - rank + i] ?? 1;
    if (dimEq(da, db) || db === 1) out.push(normDim(da));
    else if (da === 1) out.push(normDim(db));
    else return null;
  }
  return out;
}

/** Normalises a possibly negative axis; throws with the rank when out of range. */
export function normAxis(axis: number, rank: number, op: string): number {
  const a = axis < 0 ? axis + rank : axis;
  if (!Number.isInteger(a) || a < 0 || a >= rank) {
    throw new RangeError(`${op}: axis ${axis} is out of range for a tensor of rank ${rank}`);
  }
  return a;
}
