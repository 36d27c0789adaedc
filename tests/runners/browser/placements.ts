/**
 * Which nodes of the stories260k training steps onnxruntime-web's WebGPU provider leaves on the CPU, in headless
 * Chromium on SwiftShader: `session.fallbackReport()` per step, each CPU node with the IR equation behind it.
 *
 *   bun run tests/runners/browser/placements.ts            # LoRA gradient and full fine-tuning + AdamW
 *   bun run tests/runners/browser/placements.ts lora       # one of them
 *
 * A tool, not a test: the conformance suite asserts the result (every node on the GPU).
 */
import { adamwCase, loraCase, storiesMissing } from '../cases.ts';
import { formatPlacedNode } from '../../../runners/ort-web-placement.ts';
import { BROWSER_RUNNERS, browserRunner } from './driver.ts';

const missing = storiesMissing();
if (missing) throw new Error(`placements: ${missing}`);
const webgpu = BROWSER_RUNNERS[1]!;
const why = await webgpu.available();
if (why !== true) throw new Error(`placements: ${webgpu.name} is not available: ${why}`);

const which = process.argv[2];
const builders = { lora: () => loraCase(), adamw: () => adamwCase() };
try {
  for (const [key, build] of Object.entries(builders)) {
    if (which && which !== key) continue;
    const c = await build();
    const nodes = c.step.origins.size;
    const session = await browserRunner('webgpu', { feedback: { ...c.feedback }, cpuFallback: true }).load(c.step);
    const report = await session.fallbackReport();
    await session.release();
    console.log(`${c.name}: ${nodes} ONNX nodes from IR equations; ${report.summary}`);
    for (const n of report.cpuNodes) console.log(`  ${formatPlacedNode(n)}`);
    if (Object.keys(report.counts).length) console.log(`  per provider: ${JSON.stringify(report.counts)}`);
  }
} finally {
  await webgpu.close?.();
}
