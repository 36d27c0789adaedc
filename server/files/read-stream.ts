/**
 * A stored file as a web ReadableStream: read in 64 KiB pieces as the client takes them (pull-based, so a slow
 * download holds one piece, not the file), closed when the download ends or is abandoned. Opened before the
 * response starts, so a missing file is a 404 rather than a 200 that breaks off.
 */
import { open } from 'node:fs/promises';

const PIECE = 64 * 1024;

/** The file's size and bytes; undefined when it does not exist. */
export async function openFileStream(path: string): Promise<{ size: number; stream: ReadableStream<Uint8Array> } | undefined> {
  let fh;
  try {
    fh = await open(path, 'r');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
  const handle = fh;
  const { size } = await handle.stat();
  let closed = false;
  const close = async (): Promise<void> => {
    if (closed) return;
    closed = true;
    await handle.close();
  };
  const stream = new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        const piece = new Uint8Array(PIECE); // a new one each time: an enqueued piece belongs to the reader
        const { bytesRead } = await handle.read(piece, 0, PIECE, null);
        if (bytesRead === 0) {
          await close();
          controller.close();
        } else controller.enqueue(piece.subarray(0, bytesRead));
      } catch (e) {
        await close().catch(() => undefined);
        controller.error(e);
      }
    },
    cancel: () => close(),
  });
  return { size, stream };
}
