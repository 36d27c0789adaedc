/**
 * A folder as one uncompressed POSIX (ustar) archive, streamed file by file: how a job's adapter or merged model
 * becomes a single downloadable result file. Safetensors do not compress well, so there is no gzip.
 */
import { createReadStream, createWriteStream } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { once } from 'node:events';

function header(name: string, size: number, mtime: number): Buffer {
  const h = Buffer.alloc(512);
  const field = (text: string, offset: number, length: number) => h.write(text, offset, length, 'utf8');
  const octal = (n: number, length: number) => n.toString(8).padStart(length - 1, '0') + '\0';
  if (Buffer.byteLength(name) > 100) throw new Error(`tar: name '${name}' is longer than 100 bytes`);
  field(name, 0, 100);
  field(octal(0o644, 8), 100, 8);
  field(octal(0, 8), 108, 8);
  field(octal(0, 8), 116, 8);
  field(octal(size, 12), 124, 12);
  field(octal(mtime, 12), 136, 12);
  field('        ', 148, 8); // checksum counted as spaces
  field('0', 156, 1);
  field('ustar\0', 257, 6);
  field('00', 263, 2);
  let sum = 0;
  for (const b of h) sum += b;
  field(octal(sum, 7).slice(0, 6) + '\0 ', 148, 8);
  return h;
}

/** Writes `dir`'s files (not recursive: adapter and model folders are flat) under `prefix/` into `out`; returns its size. */
export async function tarFolder(dir: string, prefix: string, out: string): Promise<number> {
  const names = (await readdir(dir, { withFileTypes: true })).filter((d) => d.isFile()).map((d) => d.name).sort();
  const w = createWriteStream(out);
  let bytes = 0;
  const put = async (chunk: Buffer) => {
    bytes += chunk.length;
    if (!w.write(chunk)) await once(w, 'drain');
  };
  for (const name of names) {
    const path = join(dir, name);
    const s = await stat(path);
    await put(header(`${prefix}/${name}`, s.size, Math.floor(s.mtimeMs / 1000)));
    for await (const chunk of createReadStream(path)) await put(chunk as Buffer);
    const pad = (512 - (s.size % 512)) % 512;
    if (pad) await put(Buffer.alloc(pad));
  }
  await put(Buffer.alloc(1024)); // two empty blocks end the archive
  w.end();
  await once(w, 'finish');
  return bytes;
}
