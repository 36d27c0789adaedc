import { describe, expect, test } from 'bun:test';
import { SerialQueue, SerialQueueFullError } from './serial-queue.ts';

describe('SerialQueue', () => {
  test('runs tasks one at a time, in order, and a failure does not stop the next', async () => {
    const q = new SerialQueue();
    const log: string[] = [];
    let running = 0;
    const task = (name: string, fail = false) => async () => {
      running++;
      expect(running).toBe(1);
      log.push(`start ${name}`);
      await Bun.sleep(5);
      log.push(`end ${name}`);
      running--;
      if (fail) throw new Error(name);
      return name;
    };
    const results = await Promise.allSettled([q.run(task('a')), q.run(task('b', true)), q.run(task('c'))]);
    expect(log).toEqual(['start a', 'end a', 'start b', 'end b', 'start c', 'end c']);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    expect(q.size).toBe(0);
  });

  test('refuses tasks beyond its depth', async () => {
    const q = new SerialQueue(1);
    let release = () => {};
    const first = q.run(() => new Promise<void>((r) => (release = r)));
    const second = q.run(async () => 'second');
    expect(q.full).toBe(true);
    expect(q.run(async () => 'third')).rejects.toBeInstanceOf(SerialQueueFullError);
    await Bun.sleep(0); // the first task starts on a later tick
    release();
    await first;
    expect(await second).toBe('second');
    expect(q.full).toBe(false);
  });
});
