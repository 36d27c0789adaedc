/** A little-endian byte buffer that grows as GGUF's header, metadata and tensor infos are appended to it. */
const utf8 = new TextEncoder();

export class ByteWriter {
  private buf = new Uint8Array(1 << 16);
  private view = new DataView(this.buf.buffer);
  length = 0;

  private reserve(n: number): void {
    if (this.length + n <= this.buf.length) return;
    let size = this.buf.length;
    while (size < this.length + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.length));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }

  u8(v: number): void { this.reserve(1); this.view.setUint8(this.length, v); this.length += 1; }
  u32(v: number): void { this.reserve(4); this.view.setUint32(this.length, v, true); this.length += 4; }
  i32(v: number): void { this.reserve(4); this.view.setInt32(this.length, v, true); this.length += 4; }
  f32(v: number): void { this.reserve(4); this.view.setFloat32(this.length, v, true); this.length += 4; }
  u64(v: number | bigint): void { this.reserve(8); this.view.setBigUint64(this.length, BigInt(v), true); this.length += 8; }
  bytes(b: Uint8Array): void { this.reserve(b.length); this.buf.set(b, this.length); this.length += b.length; }
  /** gguf_string_t: uint64 byte length, then UTF-8 without a terminator. */
  string(s: string): void { const b = utf8.encode(s); this.u64(b.length); this.bytes(b); }
  /** Zero bytes up to the next multiple of `alignment`. */
  pad(alignment: number): void { const n = (alignment - (this.length % alignment)) % alignment; this.reserve(n); this.buf.fill(0, this.length, this.length + n); this.length += n; }
  result(): Uint8Array { return this.buf.subarray(0, this.length); }
}

/** Bytes of a UTF-8 string (names are limited in bytes, not characters). */
export const utf8Length = (s: string): number => utf8.encode(s).length;
