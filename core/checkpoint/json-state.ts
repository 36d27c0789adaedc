/**
 * Exact JSON encoding of a checkpoint's `state`.
 *
 * Numbers are written with JavaScript's shortest round-trip representation, so every finite double reads back
 * bit-exactly; -0 is written as `-0` (which `JSON.parse` reads back as -0). Values JSON cannot hold faithfully
 * are refused with an error naming where they are, instead of being silently changed as `JSON.stringify` would:
 * BigInt, NaN and ±Infinity, integers beyond ±(2^53 - 1) (which have usually lost bits already: keep 64-bit words
 * such as RNG state as decimal or hex strings), functions, symbols, non-plain objects and cycles.
 */

const IDENT = /^[A-Za-z_$][A-Za-z0-9_$]*$/;

function keyPath(path: string, key: string): string {
  return IDENT.test(key) ? `${path}.${key}` : `${path}[${JSON.stringify(key)}]`;
}

function numberText(v: number, path: string): string {
  if (!Number.isFinite(v)) {
    throw new Error(`${path}: ${String(v)} cannot be stored in JSON; store null or a string instead`);
  }
  if (Number.isInteger(v) && !Number.isSafeInteger(v)) {
    throw new Error(
      `${path}: the integer ${String(v)} is beyond 2^53 - 1, where numbers are not exact; ` +
        'store large integers (e.g. 64-bit RNG state words) as strings, such as x.toString() of a BigInt',
    );
  }
  return Object.is(v, -0) ? '-0' : String(v);
}

function describe(v: object): string {
  const proto: unknown = Object.getPrototypeOf(v);
  const ctor = typeof proto === 'object' && proto !== null ? (proto as { constructor?: { name?: unknown } }).constructor : undefined;
  return typeof ctor?.name === 'string' && ctor.name !== '' ? `a ${ctor.name}` : 'a non-plain object';
}

class Writer {
  private readonly seen = new Set<object>();
  readonly out: string[] = [];

  constructor(private readonly indent: string) {}

  value(v: unknown, path: string, depth: number): void {
    switch (typeof v) {
      case 'string': this.out.push(JSON.stringify(v)); return;
      case 'boolean': this.out.push(v ? 'true' : 'false'); return;
      case 'number': this.out.push(numberText(v, path)); return;
      case 'bigint':
        throw new Error(`${path}: BigInt ${v}n cannot be stored; encode it as a string (x.toString()) and read it back with BigInt(s)`);
      case 'undefined': case 'function': case 'symbol':
        throw new Error(`${path}: ${typeof v} values cannot be stored in checkpoint state (JSON data only)`);
      case 'object':
        if (v === null) this.out.push('null');
        else this.container(v, path, depth);
    }
  }

  private container(v: object, path: string, depth: number): void {
    if (this.seen.has(v)) throw new Error(`${path}: circular reference; checkpoint state must be a tree of JSON data`);
    const proto: unknown = Object.getPrototypeOf(v);
    const isArray = Array.isArray(v);
    if (!isArray && proto !== Object.prototype && proto !== null) {
      throw new Error(`${path}: ${describe(v)} cannot be stored in checkpoint state; convert it to plain JSON data`);
    }
    this.seen.add(v);
    const pad = `\n${this.indent.repeat(depth + 1)}`;
    const entries: [string, unknown][] = isArray
      ? Array.from(v as unknown[], (x, i): [string, unknown] => [`${path}[${i}]`, x]) // holes read as undefined
      : Object.entries(v).filter(([, x]) => x !== undefined).map(([k, x]) => [k, x]);
    this.out.push(isArray ? '[' : '{');
    entries.forEach(([k, x], i) => {
      if (i > 0) this.out.push(',');
      if (this.indent !== '') this.out.push(pad);
      if (isArray) this.value(x, k, depth + 1);
      else {
        this.out.push(JSON.stringify(k), this.indent === '' ? ':' : ': ');
        this.value(x, keyPath(path, k), depth + 1);
      }
    });
    if (this.indent !== '' && entries.length > 0) this.out.push(`\n${this.indent.repeat(depth)}`);
    this.out.push(isArray ? ']' : '}');
    this.seen.delete(v);
  }
}

/**
 * Encodes JSON data exactly (see the module comment), throwing on anything that would not read back the same.
 * `path` names the root in error messages; `indent` is the per-level indentation ('' for compact output).
 */
export function encodeJson(value: unknown, path = 'state', indent = ''): string {
  const w = new Writer(indent);
  w.value(value, path, 0);
  return w.out.join('');
}

/** True for a plain JSON object (not null, not an array). */
export function isJsonObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Parses JSON text that must hold an object; errors name `where`. */
export function parseJsonObject(text: string, where: string): Record<string, unknown> {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new Error(`${where}: invalid JSON (${e instanceof Error ? e.message : String(e)})`);
  }
  if (!isJsonObject(v)) throw new Error(`${where}: expected a JSON object`);
  return v;
}
