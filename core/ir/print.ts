import type { Graph, Var } from './graph.ts';
import { formatShape } from './shape.ts';

const SHORT: Record<string, string> = {
  float32: 'f32', float64: 'f64', float16: 'f16', bfloat16: 'bf16', int64: 'i64', int32: 'i32', int8: 'i8', uint8: 'u8', uint16: 'u16', bool: 'bool',
};

function typed(v: Var): string {
  return `%${v.id}:${SHORT[v.dtype]}${formatShape(v.shape)}`;
}

function formatParam(value: unknown): string {
  if (ArrayBuffer.isView(value)) return `<${(value as unknown as ArrayLike<number>).length} values>`;
  return JSON.stringify(value);
}

/**
 * A readable listing, one equation per line:
 * ```
 * graph(x:%0:f32[B,4], w:%1:f32[4,8]) {
 *   %2:f32[B,8] = matmul %0 %1
 *   ...
 * } -> y=%5
 * ```
 */
export function printGraph(graph: Graph): string {
  const lines = [`graph(${graph.inputs.map((i) => `${i.name}:${typed(i.v)}`).join(', ')}) {`];
  for (const eqn of graph.eqns) {
    const params = Object.entries(eqn.params).map(([k, v]) => `${k}=${formatParam(v)}`).join(' ');
    const args = eqn.inputs.map((v) => `%${v.id}`).join(' ');
    lines.push(`  ${typed(eqn.out)} = ${eqn.prim.name}${params ? `[${params}]` : ''} ${args}`.trimEnd());
  }
  lines.push(`} -> ${graph.outputs.map((o) => `${o.name}=%${o.v.id}`).join(', ')}`);
  return lines.join('\n');
}
