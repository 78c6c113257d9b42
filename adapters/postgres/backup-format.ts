/**
 * The base-backup stream between sidecars: "NHABK1\n", then frames of
 * [u32 BE header length][JSON header][data], ending with an `end` frame carrying the counts. Our own
 * format instead of tar: no dependency, no 8 GiB/100-char path limits, and a missing end frame
 * (a primary that died mid-backup, a cut connection) is detected instead of yielding a partial data dir.
 */
import { mkdir, open } from 'node:fs/promises';
import { isAbsolute, join, normalize } from 'node:path';
import type { Readable } from 'node:stream';
import { HaError } from '../../src/errors.js';
import { chownFor, type OsUser } from './proc.js';

export const MAGIC = Buffer.from('NHABK1\n');

export type EntryHeader =
  | { t: 'd'; p: string; m: number }
  | { t: 'f'; p: string; m: number; s: number }
  | { t: 'end'; files: number; bytes: number };

export function frameHeader(h: EntryHeader): Buffer {
  const json = Buffer.from(JSON.stringify(h));
  const len = Buffer.alloc(4);
  len.writeUInt32BE(json.length);
  return Buffer.concat([len, json]);
}

/** Reads exact byte counts from a stream's chunks. */
class ByteReader {
  private buf: Buffer = Buffer.alloc(0);
  private readonly it: AsyncIterator<Buffer | string>;
  private ended = false;
  constructor(stream: Readable) {
    this.it = stream[Symbol.asyncIterator]();
  }
  private async more(): Promise<boolean> {
    if (this.ended) return false;
    const r = await this.it.next();
    if (r.done) {
      this.ended = true;
      return false;
    }
    const chunk = typeof r.value === 'string' ? Buffer.from(r.value) : r.value;
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    return true;
  }
  async exact(n: number): Promise<Buffer> {
    while (this.buf.length < n) if (!(await this.more())) throw truncated();
    const out = this.buf.subarray(0, n);
    this.buf = this.buf.subarray(n);
    return out;
  }
  /** Up to `n` bytes in pieces as they arrive. */
  async *pieces(n: number): AsyncGenerator<Buffer> {
    let left = n;
    while (left > 0) {
      if (!this.buf.length && !(await this.more())) throw truncated();
      const take = Math.min(left, this.buf.length);
      yield this.buf.subarray(0, take);
      this.buf = this.buf.subarray(take);
      left -= take;
    }
  }
  async close(): Promise<void> {
    await this.it.return?.();
  }
}

function truncated(): HaError {
  return new HaError('CLONE_FAILED', 'the base backup stream ended early (primary stopped or connection cut); run the clone again');
}

function safeRelative(p: string): string {
  const n = normalize(p);
  if (!p || isAbsolute(p) || n.startsWith('..') || n.split('/').includes('..')) {
    throw new HaError('CLONE_FAILED', `base backup entry with an unsafe path refused: ${JSON.stringify(p)}`);
  }
  return n;
}

/** Writes the entries of a backup stream under `target` (which must exist); returns counts. */
export async function extractBackup(
  stream: Readable,
  target: string,
  user: OsUser | null,
  opts: { fsync?: boolean } = {},
): Promise<{ files: number; bytes: number }> {
  const r = new ByteReader(stream);
  try {
    const magic = await r.exact(MAGIC.length);
    if (!magic.equals(MAGIC)) throw new HaError('CLONE_FAILED', 'not a nimbus-ha base backup stream (bad magic)');
    let files = 0;
    let bytes = 0;
    for (;;) {
      const len = (await r.exact(4)).readUInt32BE(0);
      if (len > 1_000_000) throw new HaError('CLONE_FAILED', 'corrupt base backup stream (oversized header)');
      const h = JSON.parse((await r.exact(len)).toString()) as EntryHeader;
      if (h.t === 'end') {
        if (h.files !== files || h.bytes !== bytes) {
          throw new HaError('CLONE_FAILED', `base backup incomplete: got ${files} files/${bytes} bytes, sender sent ${h.files}/${h.bytes}`);
        }
        return { files, bytes };
      }
      const dest = join(target, safeRelative(h.p));
      if (h.t === 'd') {
        await mkdir(dest, { recursive: true, mode: h.m & 0o777 });
        await chownFor(dest, user);
        continue;
      }
      const fh = await open(dest, 'w', h.m & 0o777);
      try {
        for await (const piece of r.pieces(h.s)) await fh.write(piece);
        if (opts.fsync !== false) await fh.sync();
      } finally {
        await fh.close();
      }
      await chownFor(dest, user);
      files++;
      bytes += h.s;
    }
  } finally {
    await r.close();
  }
}
