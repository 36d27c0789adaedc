import { describe, expect, test } from 'bun:test';
import { LruPool } from './lru-pool.ts';

/** A pool of strings that records loads and disposals. */
function pool(capacity: number) {
  const loads: string[] = [];
  const disposed: string[] = [];
  const p = new LruPool<string>(capacity, async (v) => void disposed.push(v));
  const load = (key: string) => async () => {
    loads.push(key);
    await Bun.sleep(1);
    return `value of ${key}`;
  };
  return { p, loads, disposed, acquire: (key: string) => p.acquire(key, load(key)) };
}

describe('LruPool', () => {
  test('loads a key once, shared by concurrent and later requests', async () => {
    const { p, loads, acquire } = pool(2);
    const [a, b] = await Promise.all([acquire('a'), acquire('a')]);
    const c = await acquire('a');
    expect([a.value, b.value, c.value]).toEqual(['value of a', 'value of a', 'value of a']);
    expect(loads).toEqual(['a']);
    expect(p.keys()).toEqual(['a']);
  });

  test('evicts the least recently used, disposing it once it is released', async () => {
    const { p, disposed, acquire } = pool(2);
    (await acquire('a')).release();
    const b = await acquire('b');
    (await acquire('a')).release(); // a is now more recent than b
    const c = await acquire('c');
    expect(p.keys()).toEqual(['a', 'c']);
    expect(disposed).toEqual([]); // b is still leased
    b.release();
    b.release(); // a second release does nothing
    await Bun.sleep(0);
    expect(disposed).toEqual(['value of b']);
    c.release();
    await p.clear();
    expect(disposed.sort()).toEqual(['value of a', 'value of b', 'value of c']);
  });

  test('a failed load is not kept: the next request loads again', async () => {
    const p = new LruPool<string>(2, async () => {});
    let attempts = 0;
    const load = async () => {
      if (++attempts === 1) throw new Error('disk on fire');
      return 'ok';
    };
    expect(p.acquire('k', load)).rejects.toThrow('disk on fire');
    await Bun.sleep(0);
    expect((await p.acquire('k', load)).value).toBe('ok');
    expect(attempts).toBe(2);
  });
});
