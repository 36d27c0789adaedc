/** The trainer's output on a terminal: one bar redrawn in place, log lines printed above it (never through it). */
import { afterAll, describe, expect, test } from 'bun:test';
import { join } from 'node:path';
import { train } from '../../core/train/trainer.ts';
import { fullFinetune } from '../../plugins/index.ts';
import { removeTempDirs, storiesMissing, tempDir, tinyConfig, writeTinyData } from './helpers.ts';

afterAll(removeTempDirs);

describe.skipIf(storiesMissing('terminal progress test'))('progress on a terminal', () => {
  test('redraws the bar in place and clears it before each log line', async () => {
    const dir = tempDir('tty');
    let out = '';
    const tty = { isTTY: true, columns: 200, write: (s: string) => { out += s; return true; } };
    const config = tinyConfig(writeTinyData(dir, 40), join(dir, 'run'), { data: { validationFraction: 0.25 }, eval: { every: 2 }, train: { steps: 6 } });
    const logged: string[] = []; // lines before the bar exists (data preparation) still go to the log
    const chatty = { name: 'test:chatty', 'step:after': (ctx: { step: number; log: (l: string) => void }) => { if (ctx.step === 3) ctx.log('a plugin speaks at step 3'); } };
    await train({ config, plugins: [fullFinetune(), chatty], progress: tty, log: (l) => logged.push(l) });
    expect(logged.some((l) => l.startsWith('baseline'))).toBe(false);
    expect(out).toMatch(/\r\x1b\[K\[test:chatty\] a plugin speaks at step 3\n\rtrain \[/); // the bar is cleared, the line printed, the bar redrawn
    expect(out).toMatch(/\rtrain \[[█░]+\] step +\d\/6/); // the bar, redrawn from the start of its line
    expect(out).toMatch(/result:\n/);
    expect(out.split('\n').filter((l) => l.includes('step 6/6')).length).toBeLessThanOrEqual(2);
  }, 30_000);
});
