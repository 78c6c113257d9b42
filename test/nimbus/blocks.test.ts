/** The block diff / patch logic of Derby deltas (pure functions, no Derby needed). */
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  DELTA_BLOCK,
  RECORD_HEADER_BYTES,
  applyRecords,
  baseAccepts,
  blockDigests,
  blockRuns,
  decodeDelta,
  decodeRecordHeader,
  diffBlocks,
  encodeDelta,
  encodeRecordHeader,
  fileDigest,
  manifestDigest,
  planFile,
  type UnitFile,
} from '../../src/replication/nimbus-state/blocks.js';

const B = DELTA_BLOCK;
const bytes = (n: number, seed = 1) => Buffer.from(Array.from({ length: n }, (_, i) => (i * 31 + seed * 17) & 0xff));
const poke = (buf: Buffer, at: number[]) => {
  const b = Buffer.from(buf);
  for (const p of at) b[p] ^= 0xff;
  return b;
};

describe('diffBlocks', () => {
  const base = bytes(4 * B);
  it.each([
    { name: 'identical', cur: base, old: base, offset: 0, want: [] },
    { name: 'one byte in block 2', cur: poke(base, [2 * B + 7]), old: base, offset: 0, want: [2] },
    { name: 'first and last byte', cur: poke(base, [0, 4 * B - 1]), old: base, offset: 0, want: [0, 3] },
    { name: 'two bytes in one block', cur: poke(base, [B + 1, B + 4000]), old: base, offset: 0, want: [1] },
    { name: 'absolute indices at an offset', cur: poke(base, [B]), old: base, offset: 8 * B, want: [9] },
    { name: 'copy shorter: the missing blocks differ', cur: base, old: base.subarray(0, 2 * B + 10), offset: 0, want: [2, 3] },
    { name: 'partial last block changed', cur: poke(bytes(2 * B + 100), [2 * B + 99]), old: bytes(2 * B + 100), offset: 0, want: [2] },
    { name: 'empty', cur: Buffer.alloc(0), old: Buffer.alloc(0), offset: 0, want: [] },
  ])('$name', ({ cur, old, offset, want }) => {
    expect(diffBlocks(cur, old, offset)).toEqual(want);
  });
  it('refuses an offset off the block grid', () => {
    expect(() => diffBlocks(base, base, 100)).toThrow(/multiple/);
  });
});

describe('blockRuns', () => {
  it.each([
    { name: 'nothing', blocks: [], size: 10 * B, max: 1 << 20, want: [] },
    { name: 'one block', blocks: [3], size: 10 * B, max: 1 << 20, want: [{ offset: 3 * B, length: B }] },
    { name: 'consecutive blocks merge, unordered with duplicates', blocks: [5, 3, 4, 4], size: 10 * B, max: 1 << 20, want: [{ offset: 3 * B, length: 3 * B }] },
    { name: 'gaps split', blocks: [0, 2], size: 10 * B, max: 1 << 20, want: [{ offset: 0, length: B }, { offset: 2 * B, length: B }] },
    { name: 'last block clipped to the size', blocks: [1, 2], size: 2 * B + 10, max: 1 << 20, want: [{ offset: B, length: B + 10 }] },
    { name: 'blocks past the size dropped', blocks: [1, 5], size: 2 * B, max: 1 << 20, want: [{ offset: B, length: B }] },
    { name: 'runs capped', blocks: [0, 1, 2, 3, 4], size: 10 * B, max: 2 * B, want: [{ offset: 0, length: 2 * B }, { offset: 2 * B, length: 2 * B }, { offset: 4 * B, length: B }] },
  ])('$name', ({ blocks, size, max, want }) => {
    expect(blockRuns(blocks, size, B, max)).toEqual(want);
  });
});

describe('fileDigest', () => {
  it('is the same for equal content, changes with any block, the size or the block size', () => {
    const a = bytes(3 * B + 5);
    const d = fileDigest(a.length, blockDigests(a));
    expect(fileDigest(a.length, blockDigests(Buffer.from(a)))).toBe(d);
    expect(fileDigest(a.length, blockDigests(poke(a, [3 * B + 4])))).not.toBe(d);
    const padded = Buffer.concat([a, Buffer.alloc(1)]);
    expect(fileDigest(padded.length, blockDigests(padded))).not.toBe(d);
    expect(fileDigest(a.length, blockDigests(a, 1024), 1024)).not.toBe(d);
  });
  it('updating the digests of changed blocks only equals hashing the whole new file', () => {
    const old = bytes(8 * B);
    const cur = poke(old, [5, 6 * B + 3]);
    const table = blockDigests(old);
    for (const b of diffBlocks(cur, old, 0)) createHash('sha256').update(cur.subarray(b * B, (b + 1) * B)).digest().copy(table, b * 32);
    expect(fileDigest(cur.length, table)).toBe(fileDigest(cur.length, blockDigests(cur)));
  });
  it('refuses a table of the wrong length', () => {
    expect(() => fileDigest(2 * B, Buffer.alloc(32))).toThrow(/block digests/);
  });
});

describe('delta records and patching', () => {
  it('round-trips a header', () => {
    const h = { file: 7, offset: 2 ** 40, length: 3 * B, sha256: 'ab'.repeat(32) };
    const enc = encodeRecordHeader(h);
    expect(enc.length).toBe(RECORD_HEADER_BYTES);
    expect(decodeRecordHeader(enc)).toEqual(h);
  });

  const old = bytes(6 * B + 123);
  const cases: { name: string; cur: Buffer }[] = [
    { name: 'scattered pages', cur: poke(old, [10, 3 * B + 1, 5 * B + 9]) },
    { name: 'grown by two blocks', cur: Buffer.concat([old, bytes(2 * B, 9)]) },
    { name: 'shrunk into a partial block', cur: Buffer.from(old.subarray(0, 2 * B + 7)) },
    { name: 'unchanged', cur: Buffer.from(old) },
  ];
  it.each(cases)('old + delta(diff) = new: $name', ({ cur }) => {
    const changed = diffBlocks(cur, old.subarray(0, Math.min(old.length, cur.length)), 0);
    // A size change also rewrites the (new) last block, as the freeze copy marks it.
    if (cur.length !== old.length && cur.length) changed.push(Math.ceil(cur.length / B) - 1);
    const runs = blockRuns(changed, cur.length);
    const unit = encodeDelta(runs.map((r) => ({ file: 0, offset: r.offset, data: cur.subarray(r.offset, r.offset + r.length) })));
    const recs = decodeDelta(unit);
    expect(applyRecords(old, cur.length, recs).equals(cur)).toBe(true);
    expect(fileDigest(cur.length, blockDigests(applyRecords(old, cur.length, recs)))).toBe(fileDigest(cur.length, blockDigests(cur)));
  });

  it.each([
    { name: 'a flipped data byte', mutate: (u: Buffer) => poke(u, [RECORD_HEADER_BYTES + 5]), error: /does not match its digest/ },
    { name: 'a flipped digest byte', mutate: (u: Buffer) => poke(u, [20]), error: /does not match its digest/ },
    { name: 'cut short', mutate: (u: Buffer) => u.subarray(0, u.length - 1), error: /truncated/ },
    { name: 'a header cut short', mutate: (u: Buffer) => Buffer.concat([u, Buffer.alloc(10)]), error: /truncated delta record header/ },
    { name: 'a zero length', mutate: (u: Buffer) => { const b = Buffer.from(u); b.writeUInt32BE(0, 12); return b; }, error: /length 0/ },
  ])('a garbled unit is refused: $name', ({ mutate, error }) => {
    const unit = encodeDelta([{ file: 0, offset: B, data: bytes(B, 3) }, { file: 0, offset: 4 * B, data: bytes(B, 4) }]);
    expect(() => decodeDelta(mutate(unit))).toThrow(error);
  });

  it('refuses a record past the new size', () => {
    expect(() => applyRecords(old, 2 * B, [{ offset: 2 * B - 10, data: bytes(20) }])).toThrow(/past the file's size/);
  });
});

describe('planFile and baseAccepts', () => {
  const [A, C, D, N] = ['a', 'c', 'd', 'n'].map((c) => c.repeat(64));
  it.each([
    { name: 'standby asked, holds the new digest', in: { digest: N, peer: N, bases: [A] }, want: { mode: 'same', bases: [] } },
    { name: 'standby asked, at the acknowledged base', in: { digest: N, peer: A, bases: [A, C] }, want: { mode: 'delta', bases: [A] } },
    { name: 'standby asked, at an unknown base', in: { digest: N, peer: D, bases: [A, C] }, want: { mode: 'whole', bases: [] } },
    { name: 'standby asked, mirror unknown (cut-off patch)', in: { digest: N, peer: null, bases: [A] }, want: { mode: 'whole', bases: [] } },
    { name: 'standby asked, full copy forced', in: { digest: N, peer: A, bases: [A], forceWhole: true }, want: { mode: 'whole', bases: [] } },
    { name: 'forced, but the standby holds it already', in: { digest: N, peer: N, bases: [], forceWhole: true }, want: { mode: 'same', bases: [] } },
    { name: 'not asked, acknowledged unit is current', in: { digest: N, bases: [N, N] }, want: { mode: 'same', bases: [] } },
    { name: 'not asked, changed since the ack', in: { digest: N, bases: [A] }, want: { mode: 'delta', bases: [A] } },
    { name: 'not asked, acked and an unacknowledged unit since', in: { digest: N, bases: [A, C] }, want: { mode: 'delta', bases: [A, C] } },
    { name: 'not asked, a new file', in: { digest: N, bases: [] }, want: { mode: 'whole', bases: [] } },
  ])('$name', ({ in: input, want }) => {
    expect(planFile(input)).toEqual(want);
  });

  it.each([
    { mode: 'same', have: N, target: N, bases: [], ok: true },
    { mode: 'same', have: A, target: N, bases: [], ok: false },
    { mode: 'delta', have: A, target: N, bases: [A, C], ok: true },
    { mode: 'delta', have: C, target: N, bases: [A, C], ok: true },
    { mode: 'delta', have: D, target: N, bases: [A, C], ok: false },
    { mode: 'delta', have: null, target: N, bases: [A], ok: false },
    { mode: 'delta', have: undefined, target: N, bases: [A], ok: false },
    { mode: 'whole', have: null, target: N, bases: [], ok: true },
  ] as const)('standby with $have takes $mode: $ok', ({ mode, have, target, bases, ok }) => {
    expect(baseAccepts(mode, have, target, [...bases])).toBe(ok);
  });

  it('the manifest digest covers every field that decides what the standby does', () => {
    const files: UnitFile[] = [{ path: 'db/seg0/c1.dat', size: 3 * B, digest: N, mode: 'delta', bases: [A] }];
    const u = { snapshotId: 's1', takenAt: 1, files, delta: { sha256: C, size: 100 } };
    const d = manifestDigest(u);
    expect(manifestDigest({ ...u, files: [{ ...files[0], bases: [A] }] })).toBe(d);
    for (const v of [
      { ...u, snapshotId: 's2' },
      { ...u, delta: { sha256: C, size: 101 } },
      { ...u, delta: null },
      { ...u, files: [{ ...files[0], mode: 'whole' as const }] },
      { ...u, files: [{ ...files[0], bases: [C] }] },
      { ...u, files: [{ ...files[0], size: 2 * B }] },
    ]) expect(manifestDigest(v)).not.toBe(d);
  });
});
