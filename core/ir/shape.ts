/**
 * Dimensions are numbers or symbolic polynomials such as `B`, `B*T` or `T+5` (a sequence with five prefix slots),
 * resolved to numbers when a graph is compiled. A symbolic dim is kept in a canonical form (terms sorted, names
 * sorted inside a term, coefficients first) so that equal polynomials compare equal.
 */
export type Dim = number | string;
export type Shape = readonly Dim[];

/** A polynomial: coefficient by term, the term being its sorted names joined by '*' ('' for the constant). */
type Poly = Map<string, number>;

/*
 * Dim arithmetic runs for every dim of every equation whenever a graph is built, differentiated, checked or
 * specialised (hundreds of thousands of calls for a SmolLM2-135M step graph). Parsing a string into a polynomial and
 * formatting it back allocates maps, arrays, regex matches and strings; done on every call, that left ~100 MB of
 * garbage behind each compile (the first step's peak of bench:memory's `smollm2-135m qlora plain 1x16` rose from
 * 462 to 550 MiB when dims became polynomials). Hence: numbers take paths that allocate nothing, and every symbolic
 * string is parsed and canonicalised once (the graphs of a run use a handful of distinct dims). The caches hold
 * results only (strings, numbers and frozen polynomials) and are emptied when they grow past CACHE_LIMIT entries,
 * which only a graph with very many distinct symbolic dims would reach.
 */
const CACHE_LIMIT = 4096;
const parsed = new Map<string, Poly>(); // symbolic string -> its polynomial (never mutated once cached)
const canonical = new Map<string, Dim>(); // symbolic string -> its canonical form
const combined = new Map<string, Dim>(); // `${op}|${a}|${b}` -> result, for sums and products of symbolic dims
const termNames = new Map<string, readonly string[]>(); // term key -> its names

function remember<K, V>(cache: Map<K, V>, key: K, value: V): V {
  if (cache.size >= CACHE_LIMIT) cache.clear();
  cache.set(key, value);
  return value;
}

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

/** The polynomial of a dim; for strings the cached one, which callers must copy before changing. */
function parseDim(d: Dim): Poly {
  if (typeof d === 'number') {
    const poly: Poly = new Map();
    if (d !== 0) poly.set('', d);
    return poly;
  }
  const hit = parsed.get(d);
  if (hit) return hit;
  const poly: Poly = new Map();
  // Split on + and - that separate terms, keeping each term's sign.
  for (const m of d.replace(/\s+/g, '').matchAll(/([+-]?)([^+-]+)/g)) {
    const [key, coef] = parseTerm(m[2]!, d);
    addTerm(poly, key, m[1] === '-' ? -coef : coef);
  }
  return remember(parsed, d, poly);
}

function addTerm(poly: Poly, key: string, coef: number): void {
  const sum = (poly.get(key) ?? 0) + coef;
  if (sum === 0) poly.delete(key);
  else poly.set(key, sum);
}

function namesOf(key: string): readonly string[] {
  return termNames.get(key) ?? remember(termNames, key, key === '' ? [] : key.split('*'));
}

/** Higher-degree terms first, then by names; the constant last. */
function formatPoly(poly: Poly): Dim {
  const keys = [...poly.keys()].sort((a, b) => namesOf(b).length - namesOf(a).length || (a < b ? -1 : a > b ? 1 : 0));
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
  if (typeof d === 'number') return d === 0 ? 0 : d; // -0 is 0, as the polynomial form gives
  const hit = canonical.get(d);
  if (hit !== undefined) return hit;
  return remember(canonical, d, formatPoly(parseDim(d)));
}

/** a op b for dims at least one of which is symbolic, computed once per pair. */
function combine(kind: '*' | '+' | '-', a: Dim, b: Dim, compute: (x: Poly, y: Poly) => Poly): Dim {
  const key = `${kind}|${a}|${b}`;
  const hit = combined.get(key);
  if (hit !== undefined) return hit;
  return remember(combined, key, formatPoly(compute(parseDim(a), parseDim(b))));
}

export function mulDims(a: Dim, b: Dim): Dim {
  if (typeof a === 'number' && typeof b === 'number') return a * b === 0 ? 0 : a * b;
  if (a === 1) return normDim(b);
  if (b === 1) return normDim(a);
  return combine('*', a, b, (x, y) => {
    const out: Poly = new Map();
    for (const [ka, ca] of x) {
      for (const [kb, cb] of y) addTerm(out, [...namesOf(ka), ...namesOf(kb)].sort().join('*'), ca * cb);
    }
    return out;
  });
}

export function addDims(a: Dim, b: Dim): Dim {
  if (typeof a === 'number' && typeof b === 'number') return a + b === 0 ? 0 : a + b;
  if (b === 0) return normDim(a);
  if (a === 0) return normDim(b);
  return combine('+', a, b, (x, y) => {
    const out: Poly = new Map(x);
    for (const [k, c] of y) addTerm(out, k, c);
    return out;
  });
}

export function subDims(a: Dim, b: Dim): Dim {
  if (typeof a === 'number' && typeof b === 'number') return a - b === 0 ? 0 : a - b;
  if (b === 0) return normDim(a);
  return combine('-', a, b, (x, y) => {
    const out: Poly = new Map(x);
    for (const [k, c] of y) addTerm(out, k, -c);
    return out;
  });
}

export function dimEq(a: Dim, b: Dim): boolean {
  if (a === b) {
    if (typeof a === 'string') normDim(a); // still has to be a valid dim (throws otherwise), as before the shortcut
    return true;
  }
  if (typeof a === 'number' && typeof b === 'number') return false;
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
  if (typeof d === 'number') return d;
  let v = 0;
  for (const [key, coef] of parseDim(d)) {
    let term = coef;
    for (const n of namesOf(key)) {
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
