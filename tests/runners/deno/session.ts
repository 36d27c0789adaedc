/**
 * The Deno side of the Deno conformance runner: one onnxruntime-web wasm session per process, driven by JSON lines on
 * stdin (`load`, `run`, `readHeld`, `release`), one JSON line answered on stdout per request.
 */
import { ortWebRunner, type OrtWebSession } from '../../../runners/ort-web.ts';
import { fromWire, mapValues, stepFromWire, toWire, type WireStep, type WireTensor } from '../browser/wire.ts';

type Request =
  | { op: 'load'; step: WireStep; feedback: Record<string, string> }
  | { op: 'run'; feeds: Record<string, WireTensor> }
  | { op: 'readHeld'; input: string }
  | { op: 'release' };

declare const Deno: { stdin: { readable: ReadableStream<Uint8Array> }; stdout: { write(b: Uint8Array): Promise<number> } };

let session: OrtWebSession | undefined;
const loaded = (): OrtWebSession => {
  if (!session) throw new Error('no session loaded');
  return session;
};

async function handle(req: Request): Promise<unknown> {
  switch (req.op) {
    case 'load': session = await ortWebRunner({ feedback: req.feedback }).load(stepFromWire(req.step)); return null;
    case 'run': return mapValues(await loaded().run(mapValues(req.feeds, fromWire)), toWire);
    case 'readHeld': return toWire(await loaded().readHeld(req.input));
    case 'release': await loaded().release(); session = undefined; return null;
  }
}

const encoder = new TextEncoder(), decoder = new TextDecoder();
let buffered = '';
for await (const chunk of Deno.stdin.readable) {
  buffered += decoder.decode(chunk, { stream: true });
  for (let nl = buffered.indexOf('\n'); nl >= 0; nl = buffered.indexOf('\n')) {
    const line = buffered.slice(0, nl);
    buffered = buffered.slice(nl + 1);
    let answer: string;
    try {
      answer = JSON.stringify({ ok: await handle(JSON.parse(line) as Request) });
    } catch (e) {
      answer = JSON.stringify({ error: e instanceof Error ? e.message : String(e) });
    }
    await Deno.stdout.write(encoder.encode(`${answer}\n`));
  }
}
