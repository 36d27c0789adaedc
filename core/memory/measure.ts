import { readFileSync } from 'node:fs';

function statusField(field: 'VmHWM' | 'VmRSS'): number | undefined {
  try {
    const m = new RegExp(`${field}:\\s+(\\d+)\\s+kB`).exec(readFileSync('/proc/self/status', 'utf8'));
    return m ? Number(m[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The process's peak resident memory so far: Linux's high-water mark (VmHWM), which sees peaks inside onnxruntime
 * runs that sampling between steps would miss; elsewhere the current RSS (a lower bound).
 */
export function peakRssBytes(): number {
  return statusField('VmHWM') ?? process.memoryUsage().rss;
}

export function rssBytes(): number {
  return statusField('VmRSS') ?? process.memoryUsage().rss;
}
