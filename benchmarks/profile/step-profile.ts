/**
 * Where a training step's time goes, node by node: compiles the full fine-tuning (or LoRA-free frozen) gradient step
 * of a model shape with onnxruntime's profiler on, runs it a few times, and prints the time per ONNX op type and the
 * slowest nodes.
 *
 *   bun run profile:step [smollm|stories] [B] [T] [full|frozen]
 */
import { readdirSync, readFileSync, rmSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { compile, hostTensor, parseConfig, paramSpecs, randomWeights, SMOLLM2_135M, trace, valueAndGrad, buildCausalLM, nn } from '../../core/index.ts';
import { ortNodeRunner } from '../../runners/ort-node.ts';

const [which = 'smollm', Bs = '4', Ts = '256', mode = 'full'] = process.argv.slice(2);
const B = Number(Bs), T = Number(Ts);
const raw = which === 'smollm' ? SMOLLM2_135M : JSON.parse(readFileSync(join(import.meta.dir, '../../../shared/models/stories260k/config.json'), 'utf8'));
const config = parseConfig(raw);
const weights = randomWeights(config, 0);
const graph = trace((g) => {
  const m = buildCausalLM(g, config, { batch: 'B', seq: 'T' });
  const labels = g.input('labels', 'int64', ['B', 'T']);
  return { loss: nn.crossEntropy(m.logits, labels) };
});
const wrt = mode === 'full' ? paramSpecs(config).map((s) => s.name) : [];
const dir = mkdtempSync(join(tmpdir(), 'tuneforge-profile-'));
const exe = await compile(mode === 'full' ? valueAndGrad(graph, { of: 'loss', wrt }) : graph, {
  dims: { B, T },
  resident: mode === 'full' ? undefined : weights,
  runner: ortNodeRunner({ profilePrefix: join(dir, 'p') }),
});
const ids = hostTensor('int64', [B, T], BigInt64Array.from({ length: B * T }, (_, i) => BigInt((i * 7919) % config.vocabSize)));
const feeds = { input_ids: ids, labels: ids, ...(mode === 'full' ? Object.fromEntries(weights) : {}) };
const runs = 3;
const times: number[] = [];
for (let i = 0; i < runs; i++) {
  const t0 = performance.now();
  await exe.run(feeds);
  times.push(performance.now() - t0);
}
await exe.release();
const file = readdirSync(dir).find((f) => f.endsWith('.json'))!;
interface Ev { cat: string; name: string; dur: number; args?: { op_name?: string } }
const events = (JSON.parse(readFileSync(join(dir, file), 'utf8')) as Ev[]).filter((e) => e.cat === 'Node' && e.name.endsWith('_kernel_time'));
rmSync(dir, { recursive: true, force: true });
const byOp = new Map<string, { us: number; n: number }>();
const byNode = new Map<string, { us: number; op: string }>();
for (const e of events) {
  const opName = e.args?.op_name ?? '?';
  const o = byOp.get(opName) ?? { us: 0, n: 0 };
  o.us += e.dur; o.n++;
  byOp.set(opName, o);
  const node = e.name.replace(/_kernel_time$/, '');
  const nd = byNode.get(node) ?? { us: 0, op: opName };
  nd.us += e.dur;
  byNode.set(node, nd);
}
const total = [...byOp.values()].reduce((s, o) => s + o.us, 0);
console.log(`${which} ${mode} B=${B} T=${T}: run times ${times.map((t) => (t / 1000).toFixed(2)).join(', ')} s; kernel time per run ${(total / runs / 1e6).toFixed(2)} s`);
console.log('op type             total s/run   share   nodes/run');
for (const [k, o] of [...byOp].sort((a, b) => b[1].us - a[1].us).slice(0, 25)) {
  console.log(`${k.padEnd(20)}${(o.us / runs / 1e6).toFixed(3).padStart(10)}   ${((100 * o.us) / total).toFixed(1).padStart(5)}%   ${(o.n / runs).toFixed(0).padStart(6)}`);
}
console.log('\nslowest nodes (s/run):');
for (const [k, o] of [...byNode].sort((a, b) => b[1].us - a[1].us).slice(0, 25)) console.log(`${(o.us / runs / 1e6).toFixed(3).padStart(8)}  ${o.op.padEnd(14)} ${k}`);
