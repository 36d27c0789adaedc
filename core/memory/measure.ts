import { readFileSync } from 'node:fs';

function statusField(field: 'VmHWM' | 'VmRSS', pid: number | 'self' = 'self'): number | undefined {
  try {
    const m = new RegExp(`${field}:\\s+(\\d+)\\s+kB`).exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
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

/** Another process's peak resident memory (Linux's VmHWM), or undefined where /proc cannot tell. */
export function peakRssBytesOf(pid: number): number | undefined {
  return statusField('VmHWM', pid);
}

export function rssBytes(): number {
  return statusField('VmRSS') ?? process.memoryUsage().rss;
}
