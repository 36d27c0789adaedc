/**
 * Dimensions are numbers or symbolic polynomials such as `B`, `B*T` or `T+5` (a sequence with five prefix slots),
 * resolved to numbers when a graph is compiled. A symbolic dim is kept in a canonical form (terms sorted, names
 * sorted inside a term, coefficients first) so that equal polynomials compare equal.
 */
export type Dim = number | string;
export type Shape = readonly Dim[];

/** A polynomial: coefficient by term, the term being its sorted names joined by '*' ('' for the constant). */
type Poly = Map<string, number>;

function parseTerm(raw: string, d: Dim): [string, number] {
  let coef = 1;
  const names: string[] = [];
  for (const factor of raw.split('*')) {
    const part = factor.trim();
    if (/^\d+$/.test(part)) coef *= Number(part);
    else if (/^[A-Za-z_][A-Za-z0-9_]*$/.test(part)) names.push(part);
    else throw new TypeError(`invalid symbolic dimension ${JSON.stringify(d)}: use names and integers joined by '*' and '+'`);
  }
  return [names.sort().join('*'), coef];
}

function parseDim(d: Dim): Poly {
  const poly: Poly = new Map();
  if (typeof d === 'number') {
    if (d !== 0) poly.set('', d);
    return poly;
  }
  // Split on + and - that separate terms, keeping each term's sign.
  for (const m of d.replace(/\s+/g, '').matchAll(/([+-]?)([^+-]+)/g)) {
    const [key, coef] = parseTerm(m[2]!, d);
    addTerm(poly, key, m[1] === '-' ? -coef : coef);
  }
  return poly;
}

function addTerm(poly: Poly, key: string, coef: number): void {
  const sum = (poly.get(key) ?? 0) + coef;
  if (sum === 0) poly.delete(key);
  else poly.set(key, sum);
}

/** Higher-degree terms first, then by names; the constant last. */
function formatPoly(poly: Poly): Dim {
  const keys = [...poly.keys()].sort((a, b) => {
    const da = a === '' ? 0 : a.split('*').length, db = b === '' ? 0 : b.split('*').length;
    return db - da || (a < b ? -1 : a > b ? 1 : 0);
  });
  if (keys.length === 0) return 0;
  if (keys.length === 1 && keys[0] === '') return poly.get('')!;
  let out = '';
  for (const key of keys) {
    const coef = poly.get(key)!;
    const mag = Math.abs(coef);
    const body = key === '' ? String(mag) : mag === 1 ? key : `${mag}*${key}`;
    out += coef < 0 ? `-${body}` : out === '' ? body : `+${body}`;
  }
  return out;
}

/** Canonical form of a dim: `'T*B'` becomes `'B*T'`, `'5+T'` becomes `'T+5'`, `'4'` becomes 4. */
export function normDim(d: Dim): Dim {
  return formatPoly(parseDim(d));
}

export function mulDims(a: Dim, b: Dim): Dim {
  const x = parseDim(a), y = parseDim(b);
  const out: Poly = new Map();
  for (const [ka, ca] of x) {
    for (const [kb, cb] of y) addTerm(out, [...ka.split('*'), ...kb.split('*')].filter(Boolean).sort().join('*'), ca * cb);
  }
  return formatPoly(out);
}

export function addDims(a: Dim, b: Dim): Dim {
  const out = parseDim(a);
  for (const [k, c] of parseDim(b)) addTerm(out, k, c);
  return formatPoly(out);
}

export function subDims(a: Dim, b: Dim): Dim {
  const out = parseDim(a);
  for (const [k, c] of parseDim(b)) addTerm(out, k, -c);
  return formatPoly(out);
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
  let v = 0;
  for (const [key, coef] of parseDim(d)) {
    let term = coef;
    for (const n of key === '' ? [] : key.split('*')) {
      const b = bindings[n];
      if (b === undefined) {
        throw new Error(`symbolic dimension '${n}' has no value: pass it in dims, e.g. { ${n}: 8 }`);
      }
      term *= b;
    }
    v += term;
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
