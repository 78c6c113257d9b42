/**
 * The delete journal (src/replication/tombstones.ts): the newest tombstone per key, writes dropping it,
 * retention and the entry bound, the merge-back rule (a tombstone newer than the copy's write time keeps
 * the key deleted), and the file layer (durable appends, reload, a torn last line, compaction).
 */
import { appendFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  COMPACT_MIN_LINES,
  deletedAfterWrite,
  needsCompaction,
  newestTombstone,
  parseRecord,
  formatRecord,
  retentionFromDays,
  TombstoneIndex,
  TombstoneJournal,
  type JournalRecord,
} from '../../src/replication/tombstones.js';

const DAY = 86_400_000;

describe('deletedAfterWrite: the merge decision', () => {
  const cases: Array<{ name: string; tomb: number | null; written: number; deleted: boolean }> = [
    { name: 'no tombstone: merged', tomb: null, written: 1_000, deleted: false },
    { name: 'deleted after the copy was written: not merged', tomb: 2_000, written: 1_000, deleted: true },
    { name: 'deleted before the copy was written (written again on the old node): merged', tomb: 1_000, written: 2_000, deleted: false },
    { name: 'same millisecond: the write wins', tomb: 1_500, written: 1_500, deleted: false },
    { name: 'one millisecond later: deleted', tomb: 1_501, written: 1_500, deleted: true },
  ];
  for (const c of cases) {
    it(c.name, () => {
      expect(deletedAfterWrite(c.tomb === null ? undefined : { atMs: c.tomb }, c.written)).toBe(c.deleted);
    });
  }
});

describe('TombstoneIndex', () => {
  const d = (key: string, atMs: number, epoch?: number): JournalRecord => (epoch === undefined ? { op: 'd', key, atMs } : { op: 'd', key, atMs, epoch });
  const w = (key: string, atMs: number): JournalRecord => ({ op: 'w', key, atMs });
  const cases: Array<{ name: string; records: JournalRecord[]; want: Record<string, number | undefined>; limits?: { retentionMs: number; maxEntries: number }; now?: number }> = [
    { name: 'one delete', records: [d('a', 10)], want: { a: 10 } },
    { name: 'newest delete per key', records: [d('a', 10), d('a', 30), d('a', 20)], want: { a: 30 } },
    { name: 'a write after the delete drops it', records: [d('a', 10), w('a', 11)], want: { a: undefined } },
    { name: 'a write before the delete (out of order) leaves it', records: [d('a', 10), w('a', 9)], want: { a: 10 } },
    { name: 'delete, write, delete again', records: [d('a', 10), w('a', 20), d('a', 30)], want: { a: 30 } },
    { name: 'a write of another key leaves it', records: [d('a', 10), w('b', 20)], want: { a: 10, b: undefined } },
    { name: 'past retention: ignored', records: [d('old', 0), d('new', 9 * DAY)], want: { old: undefined, new: 9 * DAY }, limits: { retentionMs: 5 * DAY, maxEntries: 10 }, now: 10 * DAY },
    { name: 'retention 0 keeps everything', records: [d('old', 0)], want: { old: 0 }, limits: { retentionMs: 0, maxEntries: 10 }, now: 1000 * DAY },
    { name: 'past maxEntries the oldest go', records: [d('a', 3), d('b', 1), d('c', 2)], want: { a: 3, b: undefined, c: 2 }, limits: { retentionMs: 0, maxEntries: 2 } },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const ix = new TombstoneIndex(c.limits ?? { retentionMs: 0, maxEntries: 100 });
      for (const r of c.records) ix.apply(r);
      for (const [k, at] of Object.entries(c.want)) expect(ix.get(k, c.now ?? 100)?.atMs, k).toBe(at);
    });
  }

  it('keeps the epoch and lists the live tombstones oldest first; expire() drops what is past retention', () => {
    const ix = new TombstoneIndex({ retentionMs: 10, maxEntries: 100 });
    ix.apply(d('b', 5, 3));
    ix.apply(d('a', 20, 4));
    expect(ix.entries()).toEqual([{ key: 'b', atMs: 5, epoch: 3 }, { key: 'a', atMs: 20, epoch: 4 }]);
    expect(ix.expire(25)).toBe(1);
    expect(ix.entries()).toEqual([{ key: 'a', atMs: 20, epoch: 4 }]);
  });

  it('newestTombstone picks the latest of a path and its directories', () => {
    expect(newestTombstone([undefined, { key: 'd', atMs: 5 }, { key: 'd/f', atMs: 9 }])?.key).toBe('d/f');
    expect(newestTombstone([undefined, undefined])).toBeUndefined();
  });
});

describe('journal lines', () => {
  const cases: Array<{ line: string; want: JournalRecord | null }> = [
    { line: '{"op":"d","key":"VMS/a.img","atMs":12,"epoch":3}', want: { op: 'd', key: 'VMS/a.img', atMs: 12, epoch: 3 } },
    { line: '{"op":"d","key":"k","atMs":12}', want: { op: 'd', key: 'k', atMs: 12 } },
    { line: '{"op":"w","key":"k","atMs":13,"epoch":3}', want: { op: 'w', key: 'k', atMs: 13 } },
    { line: '{"op":"d","key":"k","at', want: null },
    { line: '', want: null },
    { line: '{"op":"x","key":"k","atMs":1}', want: null },
    { line: '{"op":"d","key":"","atMs":1}', want: null },
    { line: '{"op":"d","key":"k","atMs":"1"}', want: null },
    { line: '[1,2]', want: null },
  ];
  for (const c of cases) {
    it(`parses ${JSON.stringify(c.line)}`, () => {
      expect(parseRecord(c.line)).toEqual(c.want);
      if (c.want) expect(parseRecord(formatRecord(c.want))).toEqual(c.want);
    });
  }

  it('compacts only past the minimum and twice the live tombstones', () => {
    expect(needsCompaction(COMPACT_MIN_LINES - 1, 0)).toBe(false);
    expect(needsCompaction(COMPACT_MIN_LINES, 0)).toBe(true);
    expect(needsCompaction(COMPACT_MIN_LINES * 2, COMPACT_MIN_LINES)).toBe(false);
    expect(needsCompaction(COMPACT_MIN_LINES * 2 + 1, COMPACT_MIN_LINES)).toBe(true);
    expect(retentionFromDays(0)).toBe(0);
    expect(retentionFromDays(2)).toBe(2 * DAY);
  });
});

describe('TombstoneJournal on disk', () => {
  let dir: string;
  let file: string;
  let now: number;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'nha-tomb-'));
    file = join(dir, 'sub', 'tombstones.jsonl');
    now = 1_000_000;
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));
  const journal = (o: { retentionMs?: number; maxEntries?: number } = {}) => new TombstoneJournal(file, { ...o, now: () => now });

  it('a delete is on disk when deleted() resolves; a reload finds it; a write drops it', async () => {
    const j = journal();
    await j.deleted('VMS/a.img', 7);
    expect(readFileSync(file, 'utf8')).toBe('{"op":"d","key":"VMS/a.img","atMs":1000000,"epoch":7}\n');
    now += 10;
    await j.deleted('VMS/b.img');
    await j.close();

    const j2 = journal();
    expect([...(await j2.lookup(['VMS/a.img', 'VMS/b.img', 'VMS/c.img'])).values()]).toEqual([
      { key: 'VMS/a.img', atMs: 1_000_000, epoch: 7 },
      { key: 'VMS/b.img', atMs: 1_000_010 },
    ]);
    now += 10;
    await j2.written('VMS/a.img');
    await j2.deleted('VMS/c.img'); // flushes after the write's line
    await j2.close();
    const j3 = journal();
    expect([...(await j3.lookup(['VMS/a.img', 'VMS/b.img', 'VMS/c.img'])).keys()]).toEqual(['VMS/b.img', 'VMS/c.img']);
    await j3.close();
  });

  it('concurrent deletes are all durable; appends, not rewrites', async () => {
    const j = journal();
    await Promise.all(Array.from({ length: 50 }, (_, i) => j.deleted(`k${i}`)));
    expect(readFileSync(file, 'utf8').trim().split('\n')).toHaveLength(50);
    await j.close();
  });

  it('a torn last line (a crash mid-append) is ignored and does not spoil the next append', async () => {
    const j = journal();
    await j.deleted('a');
    await j.close();
    appendFileSync(file, '{"op":"d","key":"b","at');
    const j2 = journal();
    await j2.load();
    now += 5;
    await j2.deleted('c');
    await j2.close();
    const j3 = journal();
    expect([...(await j3.lookup(['a', 'b', 'c'])).keys()]).toEqual(['a', 'c']);
    await j3.close();
  });

  it('compaction keeps the newest tombstone per key and bounds the file', async () => {
    const j = journal();
    for (let i = 0; i < COMPACT_MIN_LINES + 10; i++) {
      now++;
      await j.deleted(`k${i % 3}`);
    }
    await j.close();
    const lines = readFileSync(file, 'utf8').trim().split('\n');
    expect(lines.length).toBeLessThan(20);
    const j2 = journal();
    const got = await j2.lookup(['k0', 'k1', 'k2']);
    expect(got.size).toBe(3);
    // Each key's newest delete survived compaction.
    expect(Math.max(...[...got.values()].map((t) => t.atMs))).toBe(now);
    await j2.close();
  });

  it('drops tombstones past the retention at load, and bounds the entries', async () => {
    const j = journal({ retentionMs: 2 * DAY, maxEntries: 2 });
    await j.deleted('old');
    now += DAY;
    await j.deleted('mid');
    now += DAY;
    await j.deleted('new');
    await j.close();
    now += 1.5 * DAY;
    const j2 = journal({ retentionMs: 2 * DAY, maxEntries: 2 });
    expect([...(await j2.lookup(['old', 'mid', 'new'])).keys()]).toEqual(['new']);
    await j2.close();
  });
});
