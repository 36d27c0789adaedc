/**
 * Progress lines for long data work (tokenising a large dataset takes minutes): at most one line every `everyMs`,
 * so quick jobs print nothing, with the share done and the time left.
 */
export type ProgressFn = (done: number) => void;

export function progressLines(log: (line: string) => void, what: string, total: number, everyMs = 2000): ProgressFn {
  const started = performance.now();
  let last = started;
  return (done) => {
    const now = performance.now();
    if (now - last < everyMs || done <= 0 || total <= 0) return;
    last = now;
    const elapsed = (now - started) / 1000;
    const left = (elapsed * (total - done)) / done;
    log(`${what}: ${done.toLocaleString('en-US')} / ${total.toLocaleString('en-US')} (${((100 * done) / total).toFixed(0)}%, ${elapsed.toFixed(0)} s, about ${left.toFixed(0)} s left)`);
  };
}
