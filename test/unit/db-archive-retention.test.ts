import { describe, expect, it } from 'vitest';
import { decideRetention, segmentNumberOf, walFileNameOf, type ArchiveFile, type ArchiveReader, type RetentionPolicy } from '../../src/replication/db/archive-retention.js';

const MB = 1024 * 1024;
const SEG = 16 * MB;
const HOUR = 3_600_000;
const NOW = Date.UTC(2026, 0, 10);

/** Segment `n` of timeline `tli`, `ageH` hours old. */
const seg = (n: number, ageH = 48, tli = 1): ArchiveFile => ({ name: walFileNameOf(tli, n * SEG, SEG), size: SEG, mtimeMs: NOW - ageH * HOUR });
const hist = (tli: number): ArchiveFile => ({ name: `${tli.toString(16).toUpperCase().padStart(8, '0')}.history`, size: 42, mtimeMs: NOW - 100 * HOUR });
const at = (name: string, n: number): ArchiveReader => ({ name, restartBytes: n * SEG + 1234 });
const name = (n: number, tli = 1) => walFileNameOf(tli, n * SEG, SEG);
const range = (a: number, b: number) => Array.from({ length: b - a }, (_, i) => a + i);

const noWindow = { maxAgeMs: 0, keepBytes: 0, maxBytes: 0, segmentBytes: SEG };

interface Row {
  what: string;
  files: ArchiveFile[];
  readers: ArchiveReader[];
  policy?: Partial<RetentionPolicy>;
  remove: string[];
  lost?: string[];
}

const table: Row[] = [
  { what: 'every reader past segment 5: 0..4 go', files: range(0, 10).map((n) => seg(n)), readers: [at('b', 7), at('slot_b', 5)], remove: range(0, 5).map((n) => name(n)) },
  { what: 'the slowest reader decides', files: range(0, 10).map((n) => seg(n)), readers: [at('b', 9), at('slot_b', 2)], remove: [name(0), name(1)] },
  { what: 'an unknown restart point keeps everything', files: range(0, 10).map((n) => seg(n)), readers: [at('b', 9), { name: 'slot_b', restartBytes: null }], remove: [] },
  { what: 'no readers at all: only the window keeps files', files: range(0, 4).map((n) => seg(n)), readers: [], remove: range(0, 4).map((n) => name(n)) },
  { what: 'the restart segment itself is kept', files: range(0, 3).map((n) => seg(n)), readers: [{ name: 'b', restartBytes: 2 * SEG }], remove: [name(0), name(1)] },
  { what: 'age window keeps young files although unneeded', files: [seg(0, 30), seg(1, 20), seg(2, 10), seg(3, 1)], readers: [at('b', 4)], policy: { maxAgeMs: 24 * HOUR }, remove: [name(0)] },
  { what: 'size window keeps the newest files although old', files: range(0, 6).map((n) => seg(n)), readers: [at('b', 6)], policy: { keepBytes: 2 * SEG }, remove: range(0, 4).map((n) => name(n)) },
  { what: 'whichever keeps more: size beats a short age', files: [seg(0, 30), seg(1, 20), seg(2, 10), seg(3, 1)], readers: [at('b', 4)], policy: { maxAgeMs: 2 * HOUR, keepBytes: 3 * SEG }, remove: [name(0)] },
  { what: 'whichever keeps more: age beats a small size', files: [seg(0, 30), seg(1, 20), seg(2, 10), seg(3, 1)], readers: [at('b', 4)], policy: { maxAgeMs: 25 * HOUR, keepBytes: SEG }, remove: [name(0)] },
  { what: 'history files are never removed', files: [hist(2), hist(3), seg(0), seg(1)], readers: [at('b', 5)], policy: { maxBytes: 1 }, remove: [name(0), name(1)], lost: [] },
  { what: 'timeline ignored as in pg_archivecleanup: an older-timeline file at a later segment stays', files: [seg(3, 48, 1), seg(4, 48, 1), seg(4, 48, 2), seg(6, 48, 2)], readers: [at('b', 5)], remove: [name(3, 1), name(4, 1), name(4, 2)] },
  { what: 'partial and backup files follow their segment', files: [seg(1), { name: `${name(2)}.partial`, size: SEG, mtimeMs: 0 }, { name: `${name(2)}.00000028.backup`, size: 300, mtimeMs: 0 }, seg(3)], readers: [at('b', 3)], remove: [name(1), `${name(2)}.00000028.backup`, `${name(2)}.partial`] },
  { what: 'not WAL: left alone', files: [{ name: 'README', size: 10, mtimeMs: 0 }, { name: '.nha-reclone.json', size: 10, mtimeMs: 0 }, seg(0)], readers: [at('b', 1)], remove: [name(0)] },
  { what: 'hard cap: the oldest needed files go and the reader is lost', files: range(0, 10).map((n) => seg(n)), readers: [at('b', 2), at('c', 9)], policy: { maxBytes: 5 * SEG }, remove: range(0, 5).map((n) => name(n)), lost: ['b'] },
  { what: 'hard cap not reached: a needed file stays', files: range(0, 10).map((n) => seg(n)), readers: [at('b', 2)], policy: { maxBytes: 10 * SEG }, remove: [name(0), name(1)], lost: [] },
  { what: 'hard cap beats the retention window', files: range(0, 4).map((n) => seg(n, 1)), readers: [at('b', 4)], policy: { maxAgeMs: 24 * HOUR, keepBytes: 2 * 1024 * MB, maxBytes: 2 * SEG }, remove: [name(0), name(1)], lost: [] },
  { what: 'hard cap with headroom: room for the next segment stays free', files: range(0, 10).map((n) => seg(n)), readers: [at('c', 9)], policy: { maxAgeMs: 24 * HOUR, keepBytes: 2 * 1024 * MB, maxBytes: 5 * SEG, headroomBytes: SEG }, remove: range(0, 6).map((n) => name(n)), lost: [] },
  { what: 'hard cap with headroom not reached', files: range(0, 4).map((n) => seg(n)), readers: [at('c', 3)], policy: { maxAgeMs: 24 * HOUR, keepBytes: 2 * 1024 * MB, maxBytes: 5 * SEG, headroomBytes: SEG }, remove: [], lost: [] },
  { what: 'hard cap never removes the newest segment', files: range(0, 3).map((n) => seg(n)), readers: [{ name: 'b', restartBytes: null }], policy: { maxBytes: SEG / 2 }, remove: [name(0), name(1)], lost: ['b'] },
];

describe('WAL archive retention rule', () => {
  it.each(table)('$what', (row) => {
    const d = decideRetention(row.files, row.readers, { ...noWindow, ...row.policy }, NOW);
    expect(d.remove).toEqual(row.remove);
    if (row.lost) expect(d.lost).toEqual(row.lost);
    const left = row.files.filter((f) => !d.remove.includes(f.name)).reduce((s, f) => s + f.size, 0);
    expect(d.bytesAfter).toBe(left);
  });

  it('names a position the way PostgreSQL does', () => {
    expect(walFileNameOf(1, 0x1_2345_6789, SEG)).toBe('000000010000000100000023');
    expect(segmentNumberOf('000000010000000100000023', SEG)).toBe(256 + 0x23);
    expect(segmentNumberOf('00000002.history', SEG)).toBeNull();
  });
});
