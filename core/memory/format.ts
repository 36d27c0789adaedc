import type { MemoryPlan } from './plan.ts';

const mib = (b: number) => (b / 2 ** 20).toFixed(1);

/** The plan as a table: component, MiB, share of the total, note; then the rule-of-thumb estimates. */
export function formatPlan(p: MemoryPlan): string {
  const rows = p.items.map((i) => [i.component, mib(i.bytes), `${((100 * i.bytes) / p.totalBytes).toFixed(1)}%`, i.note ?? '']);
  rows.push(['total (predicted peak)', mib(p.totalBytes), '100.0%', '']);
  const all = [...rows, ...p.ruleOfThumb.map((r) => [r.component, mib(r.bytes), '', ''])];
  const w = [0, 1, 2].map((c) => Math.max(...all.map((r) => r[c]!.length), ['component', 'MiB', 'share'][c]!.length));
  const line = (r: string[]) => `  ${r[0]!.padEnd(w[0]!)}  ${r[1]!.padStart(w[1]!)}  ${r[2]!.padStart(w[2]!)}  ${r[3]}`.trimEnd();
  const out = [
    `memory plan for ${p.model}: ${p.parameters.toLocaleString('en-US')} parameters, ${p.trainableParameters.toLocaleString('en-US')} trainable`,
    `  micro-batch ${p.microBatchSize} x ${p.dims.T} tokens (${p.fromData ? 'the longest batch of the tokenised data' : 'data.maxLength: no pass over the data'}), ${p.accumulationSteps} accumulation step(s), checkpointing ${p.checkpointing ? 'on' : 'off'}`,
    line(['component', 'MiB', 'share', 'note']),
    ...rows.slice(0, -1).map(line),
    `  ${'-'.repeat(w[0]! + w[1]! + w[2]! + 4)}`,
    line(rows.at(-1)!),
    'rules of thumb (for comparison; they ignore activations and runtime):',
    ...p.ruleOfThumb.map((r) => line([r.component, mib(r.bytes), '', r.note ?? ''])),
  ];
  return out.join('\n');
}
