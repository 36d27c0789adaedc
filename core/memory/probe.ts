/**
 * What the bytes-per-parameter probes (plugins/nf4, plugins/int8, core/memory/half-probe.ts) share: exact Linux
 * memory figures, the resident size once garbage is collected and malloc trimmed, and a cheap seeded N(0, 0.02) fill
 * for weights built tensor by tensor.
 */
import { readFileSync } from 'node:fs';
import { collectGarbage, trimMalloc } from './allocator.ts';

/** VmRSS or VmHWM in bytes; a probe's figure must be exact, so anywhere without /proc/self/status it throws. */
export function procStatusBytes(field: 'VmRSS' | 'VmHWM'): number {
  const m = new RegExp(`${field}:\\s+(\\d+)\\s+kB`).exec(readFileSync('/proc/self/status', 'utf8'));
  if (!m) throw new Error(`${field} not found in /proc/self/status (Linux only)`);
  return Number(m[1]) * 1024;
}

/** RSS after a full garbage collection with free malloc memory handed back (what the live arrays hold). */
export async function settledRss(): Promise<number> {
  collectGarbage();
  collectGarbage();
  await trimMalloc();
  return procStatusBytes('VmRSS');
}

let rngState = 0x2545f491;
/** Fills `w` with N(0, 0.02) draws (xorshift32 + Box-Muller, both outputs used; one stream per process); returns it. */
export function fillNormal(w: Float32Array): Float32Array {
  const uniform = () => {
    rngState ^= rngState << 13; rngState >>>= 0; rngState ^= rngState >>> 17; rngState ^= rngState << 5; rngState >>>= 0;
    return (rngState + 0.5) / 4294967296;
  };
  for (let i = 0; i < w.length; i += 2) {
    const r = 0.02 * Math.sqrt(-2 * Math.log(uniform())), t = 2 * Math.PI * uniform();
    w[i] = r * Math.cos(t);
    if (i + 1 < w.length) w[i + 1] = r * Math.sin(t);
  }
  return w;
}
