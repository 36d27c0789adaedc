/** onnxruntime-web wasm under Deno as a conformance runner: each session is a `deno run` child speaking JSON lines. */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { HostTensor } from '../../../core/ir/host.ts';
import type { ConformanceRunner } from '../../../runners/conformance.ts';
import type { Runner, RunnerSession } from '../../../runners/types.ts';
import { fromWire, mapValues, stepToWire, toWire, type WireTensor } from '../browser/wire.ts';

const DENO = process.env.TUNEFORGE_DENO ?? join(import.meta.dir, '../../../node_modules/.bin/deno');

function denoRunner(feedback: Record<string, string>): Runner {
  return {
    name: 'onnxruntime-web wasm (deno)',
    async load(step) {
      const child = Bun.spawn([DENO, 'run', '--quiet', '-A', join(import.meta.dir, 'session.ts')], { stdin: 'pipe', stdout: 'pipe', stderr: 'pipe' });
      const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
      let buffered = '';
      const request = async <T>(req: object): Promise<T> => {
        child.stdin.write(`${JSON.stringify(req)}\n`);
        await child.stdin.flush();
        for (;;) {
          const nl = buffered.indexOf('\n');
          if (nl >= 0) {
            const answer = JSON.parse(buffered.slice(0, nl)) as { ok?: T; error?: string };
            buffered = buffered.slice(nl + 1);
            if (answer.error !== undefined) throw new Error(`deno: ${answer.error}`);
            return answer.ok as T;
          }
          const { value, done } = await lines.read();
          if (done) throw new Error(`deno exited (${await child.exited}): ${await new Response(child.stderr).text()}`);
          buffered += value;
        }
      };
      await request({ op: 'load', step: stepToWire(step), feedback });
      const session: RunnerSession & { readHeld(input: string): Promise<HostTensor> } = {
        run: async (feeds) => mapValues(await request<Record<string, WireTensor>>({ op: 'run', feeds: mapValues(feeds, toWire) }), fromWire),
        readHeld: async (input) => fromWire(await request<WireTensor>({ op: 'readHeld', input })),
        async release() {
          await request({ op: 'release' });
          child.stdin.end();
          await child.exited;
        },
      };
      return session;
    },
  };
}

export const DENO_RUNNER: ConformanceRunner = {
  name: 'onnxruntime-web wasm (deno)',
  async available() {
    if (!existsSync(DENO)) return `no Deno at ${DENO} (npm i -D deno, or set TUNEFORGE_DENO)`;
    const version = Bun.spawnSync([DENO, '--version']);
    return version.exitCode === 0 ? true : `${DENO} --version failed: ${version.stderr.toString().trim()}`;
  },
  make: ({ feedback }) => denoRunner({ ...feedback }),
};
