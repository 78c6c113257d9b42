/**
 * Page-granular deltas of Derby files, as pure functions (no I/O): which blocks of a file changed, the
 * digest of a file as a function of its block digests (so changing a few blocks never re-hashes the
 * file), the records of a delta unit (file, offset, length, sha256, bytes), the per-file plan (nothing,
 * a delta on a known base, or the whole file) and a patch that applies records to a buffer.
 *
 * Blocks are 4 KiB: Derby's default page size, and what bench:nimbus measured best (64 KiB blocks
 * shipped 15 times the bytes for scattered updates; the comparison costs the same).
 */
import { createHash } from 'node:crypto';

export const DELTA_BLOCK = 4096;
/** Longest record of a delta unit (consecutive changed blocks are coalesced up to this). */
export const MAX_RECORD_BYTES = 1 << 20;
/** Bytes of a record header: u32 file index, u64 offset, u32 length, 32-byte sha256. */
export const RECORD_HEADER_BYTES = 48;

export const blockCount = (size: number, bs = DELTA_BLOCK): number => Math.ceil(size / bs);

/**
 * Blocks that differ between `cur` (the file's bytes at `offset`) and `old` (the copy's bytes at the
 * same offset; shorter when the copy is shorter), as absolute block indices. `offset` is block-aligned.
 */
export function diffBlocks(cur: Buffer, old: Buffer, offset: number, bs = DELTA_BLOCK): number[] {
  if (offset % bs !== 0) throw new Error(`offset ${offset} is not a multiple of the block size ${bs}`);
  const out: number[] = [];
  if (cur.length === old.length && cur.equals(old)) return out;
  const first = offset / bs;
  for (let o = 0, i = 0; o < cur.length; o += bs, i++) {
    const end = Math.min(o + bs, cur.length);
    if (end > old.length || cur.compare(old, o, end, o, end) !== 0) out.push(first + i);
  }
  return out;
}

/** sha256 of every block of `data`, concatenated (32 bytes per block). */
export function blockDigests(data: Buffer, bs = DELTA_BLOCK): Buffer {
  const out = Buffer.allocUnsafe(blockCount(data.length, bs) * 32);
  for (let o = 0, i = 0; o < data.length; o += bs, i++) createHash('sha256').update(data.subarray(o, o + bs)).digest().copy(out, i * 32);
  return out;
}

/** The digest of a file: sha256 over its size, the block size and its block digests. */
export function fileDigest(size: number, digests: Buffer, bs = DELTA_BLOCK): string {
  if (digests.length !== blockCount(size, bs) * 32) throw new Error(`${digests.length / 32} block digests for ${blockCount(size, bs)} blocks`);
  const head = Buffer.alloc(16);
  head.writeBigUInt64BE(BigInt(size), 0);
  head.writeUInt32BE(bs, 8);
  return createHash('sha256').update('nimbus-ha blocks v1\n').update(head).update(digests).digest('hex');
}

/** Byte ranges covering `blocks` (any order, duplicates allowed), consecutive blocks merged up to `maxBytes`, clipped to `size`. */
export function blockRuns(blocks: Iterable<number>, size: number, bs = DELTA_BLOCK, maxBytes = MAX_RECORD_BYTES): { offset: number; length: number }[] {
  const sorted = [...new Set(blocks)].filter((b) => b >= 0 && b * bs < size).sort((a, b) => a - b);
  const out: { offset: number; length: number }[] = [];
  for (const b of sorted) {
    const offset = b * bs;
    const length = Math.min(bs, size - offset);
    const last = out.at(-1);
    if (last && last.offset + last.length === offset && last.length + length <= maxBytes) last.length += length;
    else out.push({ offset, length });
  }
  return out;
}

export interface DeltaRecord {
  /** Index of the file in the unit's manifest. */
  file: number;
  offset: number;
  length: number;
  /** sha256 (hex) of the record's bytes. */
  sha256: string;
}

export function encodeRecordHeader(r: DeltaRecord): Buffer {
  const b = Buffer.alloc(RECORD_HEADER_BYTES);
  b.writeUInt32BE(r.file, 0);
  b.writeBigUInt64BE(BigInt(r.offset), 4);
  b.writeUInt32BE(r.length, 12);
  if (!/^[0-9a-f]{64}$/.test(r.sha256)) throw new Error('record sha256 must be 64 hex digits');
  b.write(r.sha256, 16, 'hex');
  return b;
}

export function decodeRecordHeader(b: Buffer): DeltaRecord {
  if (b.length < RECORD_HEADER_BYTES) throw new Error(`truncated delta record header (${b.length} of ${RECORD_HEADER_BYTES} bytes)`);
  const offset = b.readBigUInt64BE(4);
  if (offset > BigInt(Number.MAX_SAFE_INTEGER)) throw new Error('delta record offset out of range');
  const r = { file: b.readUInt32BE(0), offset: Number(offset), length: b.readUInt32BE(12), sha256: b.toString('hex', 16, 48) };
  if (r.length === 0 || r.length > MAX_RECORD_BYTES) throw new Error(`delta record length ${r.length} out of range`);
  return r;
}

/** One whole delta unit in memory (tests; the data path streams records one at a time). */
export function encodeDelta(records: { file: number; offset: number; data: Buffer }[]): Buffer {
  return Buffer.concat(records.flatMap((r) => [encodeRecordHeader({ file: r.file, offset: r.offset, length: r.data.length, sha256: createHash('sha256').update(r.data).digest('hex') }), r.data]));
}

/** Every record of an in-memory delta unit, each checked against its digest; throws on anything garbled. */
export function decodeDelta(buf: Buffer): (DeltaRecord & { data: Buffer })[] {
  const out: (DeltaRecord & { data: Buffer })[] = [];
  for (let p = 0; p < buf.length; ) {
    const h = decodeRecordHeader(buf.subarray(p, p + RECORD_HEADER_BYTES));
    const data = buf.subarray(p + RECORD_HEADER_BYTES, p + RECORD_HEADER_BYTES + h.length);
    if (data.length !== h.length) throw new Error(`truncated delta record (${data.length} of ${h.length} bytes)`);
    checkRecord(h, data);
    out.push({ ...h, data });
    p += RECORD_HEADER_BYTES + h.length;
  }
  return out;
}

export function checkRecord(h: DeltaRecord, data: Buffer): void {
  if (createHash('sha256').update(data).digest('hex') !== h.sha256) throw new Error(`delta record at offset ${h.offset} (${h.length} bytes) does not match its digest`);
}

/** How one file of a unit reaches the standby's mirror. */
export type ShipMode = 'same' | 'delta' | 'whole';

export interface PlanInput {
  /** The file's digest in the primary's copy now. */
  digest: string;
  /** The standby's mirror digest of this file when it was asked this round (null: unknown or absent), else undefined. */
  peer?: string | null;
  /** Digests the standby's mirror may hold (the last acknowledged unit's and every unit sent since); empty: none known. */
  bases: string[];
  /** A full copy is asked for (the standby could not use a delta). */
  forceWhole?: boolean;
}

/**
 * The plan for one file: `same` when the standby holds it already, `delta` when the standby's mirror is
 * at a base this side knows the changed blocks from, `whole` otherwise (a full copy).
 */
export function planFile(f: PlanInput): { mode: ShipMode; bases: string[] } {
  if (f.peer !== undefined) {
    if (f.peer === f.digest) return { mode: 'same', bases: [] };
    if (f.forceWhole || f.peer === null || !f.bases.includes(f.peer)) return { mode: 'whole', bases: [] };
    return { mode: 'delta', bases: [f.peer] };
  }
  const bases = [...new Set(f.bases)];
  if (f.forceWhole || !bases.length) return { mode: 'whole', bases: [] };
  if (bases.length === 1 && bases[0] === f.digest) return { mode: 'same', bases: [] };
  return { mode: 'delta', bases };
}

/** The standby's side of a plan: may this mirror file (digest `have`, null when unknown) take it? */
export function baseAccepts(mode: ShipMode, have: string | null | undefined, target: string, bases: string[]): boolean {
  if (mode === 'whole') return true;
  if (have === null || have === undefined) return false;
  return mode === 'same' ? have === target : bases.includes(have);
}

/** Applies checked records to a file's old bytes and sets its new size (what the standby does on disk). */
export function applyRecords(old: Buffer, size: number, records: { offset: number; data: Buffer }[]): Buffer {
  const out = Buffer.alloc(size);
  old.copy(out, 0, 0, Math.min(old.length, size));
  for (const r of records) {
    if (r.offset + r.data.length > size) throw new Error(`record at ${r.offset} (${r.data.length} bytes) lies past the file's size ${size}`);
    r.data.copy(out, r.offset);
  }
  return out;
}

/** One file of a Derby unit as the commit lists it. */
export interface UnitFile {
  path: string;
  size: number;
  /** fileDigest() of the file in this unit. */
  digest: string;
  mode: ShipMode;
  /** delta: digests of the mirror file the records apply to. */
  bases: string[];
  /** whole: sha256 of the file's bytes as shipped. */
  sha256?: string;
}

/** The digest of a unit's manifest: every file's path, size, digest, mode and bases, and the delta's digest. */
export function manifestDigest(u: { snapshotId: string; takenAt: number; files: UnitFile[]; delta: { sha256: string; size: number } | null }): string {
  const h = createHash('sha256').update(`nimbus-ha unit v1\n${u.snapshotId}\n${u.takenAt}\n${u.delta ? `${u.delta.sha256} ${u.delta.size}` : '-'}\n`);
  for (const f of u.files) h.update(`${JSON.stringify(f.path)} ${f.size} ${f.digest} ${f.mode} ${[...f.bases].sort().join(',')} ${f.sha256 ?? '-'}\n`);
  return h.digest('hex');
}
