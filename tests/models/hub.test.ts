/** loadModel through the (local, real HTTP) test Hub gives the same model as loading the folder directly. */
import { afterAll, describe, expect, test } from 'bun:test';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { compile, trace, type HostTensor } from '../../core/index.ts';
import { startHubServer } from '../../core/hub/test-server.ts';
import { buildCausalLM } from '../../core/models/llama.ts';
import { loadModel, type LoadedModel } from '../../core/models/load.ts';

const MODEL = join(import.meta.dir, '../../../shared/models/stories260k');
const missing = !existsSync(join(MODEL, 'config.json'));
if (missing) console.warn(`skipping model Hub tests: ${MODEL} is absent`);

const tmpDirs: string[] = [];
afterAll(async () => {
  for (const d of tmpDirs) await rm(d, { recursive: true, force: true });
});

async function logitsOf(m: LoadedModel, ids: number[]): Promise<Float32Array> {
  const graph = trace((g) => ({ logits: buildCausalLM(g, m.config, { batch: 1, seq: ids.length }).logits }));
  const exe = await compile(graph, { resident: m.weights });
  const input: HostTensor = { dtype: 'int64', shape: [1, ids.length], data: BigInt64Array.from(ids, BigInt) };
  const out = await exe.run({ input_ids: input });
  await exe.release();
  return out.logits!.data as Float32Array;
}

describe.skipIf(missing)('loadModel from a Hub', () => {
  test('karpathy/stories260k from the test Hub equals the local folder', async () => {
    const cacheDir = await mkdtemp(join(tmpdir(), 'tuneforge-hub-cache-'));
    tmpDirs.push(cacheDir);
    const server = await startHubServer({ repos: { 'karpathy/stories260k': MODEL } });
    let remote: LoadedModel;
    try {
      remote = await loadModel('karpathy/stories260k', { endpoint: server.url, cacheDir });
      expect(server.requests.some((r) => r.includes('/karpathy/stories260k/resolve/') && r.endsWith('/model.safetensors'))).toBe(true);
    } finally {
      await server.close();
    }
    expect(remote.dir.startsWith(cacheDir)).toBe(true);
    expect(existsSync(join(remote.dir, 'model.safetensors'))).toBe(true);

    const local = await loadModel(MODEL);
    expect(remote.config.raw).toEqual(local.config.raw);
    expect([...remote.weights.keys()]).toEqual([...local.weights.keys()]);

    const ids = [1, 403, 407, 261, 378, 10, 287, 300];
    const [a, b] = [await logitsOf(remote, ids), await logitsOf(local, ids)];
    expect(a.length).toBe(ids.length * local.config.vocabSize);
    expect(Array.from(a)).toEqual(Array.from(b)); // bit for bit
  });
});
