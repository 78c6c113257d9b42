/**
 * Merge-back of the config trees on a rejoin, in process: a standby that was primary (marker written on
 * promotion) sends the primary's receiver the files it wrote as primary that the primary lacks, from its
 * tree and from quarantine folders made since; conflicts keep the primary's version; paths the primary
 * deleted since it became primary (or had received and no longer has) do not come back; `keep` sends
 * nothing and lists the paths.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { createHash } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FileSyncReceiver } from '../../src/replication/files/receiver.js';
import { FileTombstones, FilesMergeBack, PRIMARY_MARKER_FILE, TOMBSTONES_FILE } from '../../src/replication/files/merge-back.js';
import { mergeRequestSchema } from '../../src/replication/files/protocol.js';
import type { PeerTransport } from '../../src/ports.js';
import { systemClock } from '../../src/clock.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const sha = (s: string) => createHash('sha256').update(s).digest('hex');

interface Ev {
  type: string;
  details?: Record<string, unknown>;
}

let dir: string;
let P: string;
let S: string;
let QP: string;
let QS: string;
let events: Ev[];
let primary: FileSyncReceiver;
let tombstones: FileTombstones;
let standbyRx: FileSyncReceiver;
let isPrimary: boolean;

class ToPrimary implements PeerTransport {
  requests = 0;
  async post<T>(_url: string, path: string, body: unknown): Promise<T> {
    this.requests++;
    if (!path.endsWith('/merge')) throw new Error(`unexpected ${path}`);
    return (await primary.acceptMerge(mergeRequestSchema.parse(JSON.parse(JSON.stringify(body))), 'b')) as T;
  }
  async getStream(): Promise<Readable> {
    throw new Error('not used');
  }
  async putStream<T>(): Promise<T> {
    throw new Error('not used');
  }
}

function mergeBack(policy: 'merge' | 'keep', transport = new ToPrimary()): FilesMergeBack {
  return new FilesMergeBack({
    trees: [{ name: 'etc', path: S, exclude: ['*.swp'] }],
    quarantineDir: QS,
    policy,
    transport,
    lastReceived: (t, r) => standbyRx.lastReceived(t, r),
    events: { emit: (e) => events.push(e as Ev) },
    stepMs: 50,
  });
}

async function until(what: string, fn: () => boolean, timeoutMs = 5000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!fn()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'nha-merge-'));
  P = join(dir, 'p', 'etc');
  S = join(dir, 's', 'etc');
  QP = join(dir, 'p', 'q');
  QS = join(dir, 's', 'q');
  for (const d of [P, S]) mkdirSync(d, { recursive: true });
  events = [];
  isPrimary = true;
  tombstones = new FileTombstones(join(QP, TOMBSTONES_FILE));
  primary = new FileSyncReceiver({ trees: [{ name: 'etc', path: P, exclude: [] }], quarantineDir: QP, mergeAccepting: () => isPrimary, tombstones, accepting: () => !isPrimary });
  standbyRx = new FileSyncReceiver({ trees: [{ name: 'etc', path: S, exclude: ['*.swp'] }], quarantineDir: QS });
  // Before this node was primary it received old.conf from the other node (and so did the primary have it).
  await standbyRx.applyBatch({ tree: 'etc', entries: [{ op: 'file', path: 'old.conf', mode: 0o644, mtimeMs: Date.now() - 60_000, sha256: sha('old\n'), data: Buffer.from('old\n').toString('base64') }] });
  writeFileSync(join(P, 'old.conf'), 'old\n');
});

afterEach(async () => {
  await tombstones.close();
  rmSync(dir, { recursive: true, force: true });
});

/** What the standby wrote as primary, after its marker. */
async function writeAsPrimary(mb: FilesMergeBack): Promise<void> {
  await mb.markPrimary({ node: 'b', epoch: 2 });
  await sleep(30);
  mkdirSync(join(S, 'sub'), { recursive: true });
  writeFileSync(join(S, 'new.conf'), 'new on b\n');
  writeFileSync(join(S, 'sub', 'deep.conf'), 'deep on b\n');
  writeFileSync(join(S, 'conflict.conf'), 'b version\n');
  writeFileSync(join(S, 'gone.conf'), 'b wrote it, the primary deleted it\n');
  writeFileSync(join(S, 'x.swp'), 'excluded\n');
  // Moved aside by the sync during the rejoin (a folder made after the marker)...
  const qid = `${new Date(Date.now() + 1000).toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z')}-abc123`;
  mkdirSync(join(QS, qid, 'etc', 'q'), { recursive: true });
  writeFileSync(join(QS, qid, 'etc', 'q', 'aside.conf'), 'aside on b\n');
  // ...and an old quarantine folder (before this node was primary): not merged.
  mkdirSync(join(QS, '20000101T000000Z-abcdef', 'etc'), { recursive: true });
  writeFileSync(join(QS, '20000101T000000Z-abcdef', 'etc', 'ancient.conf'), 'ancient\n');
  const past = (Date.now() - 3_600_000) / 1000;
  utimesSync(join(QS, '20000101T000000Z-abcdef', 'etc', 'ancient.conf'), past, past);
  // The primary meanwhile: its own version of conflict.conf, and a delete of gone.conf.
  writeFileSync(join(P, 'conflict.conf'), 'primary version\n');
  await sleep(5);
  await tombstones.deleted('etc', 'gone.conf');
}

describe('files merge-back on rejoin', () => {
  it('merge: files the primary lacks are written there; conflicts and the primary’s deletes are not; the marker goes when done', async () => {
    const mb = mergeBack('merge');
    await writeAsPrimary(mb);
    expect(existsSync(join(QS, PRIMARY_MARKER_FILE))).toBe(true);
    // A restarted process knows at once that a rejoin is due.
    const again = mergeBack('merge');
    expect(again.rejoining).toBe(true);
    again.start(() => 'http://primary');
    await until('merge done', () => events.some((e) => e.type === 'files_merge_done'));
    expect(again.rejoining).toBe(false);
    expect(existsSync(join(QS, PRIMARY_MARKER_FILE))).toBe(false);

    expect(readFileSync(join(P, 'new.conf'), 'utf8')).toBe('new on b\n');
    expect(readFileSync(join(P, 'sub', 'deep.conf'), 'utf8')).toBe('deep on b\n');
    expect(readFileSync(join(P, 'q', 'aside.conf'), 'utf8')).toBe('aside on b\n');
    expect(readFileSync(join(P, 'conflict.conf'), 'utf8')).toBe('primary version\n');
    expect(existsSync(join(P, 'gone.conf'))).toBe(false);
    expect(existsSync(join(P, 'x.swp'))).toBe(false);
    expect(existsSync(join(P, 'ancient.conf'))).toBe(false);
    expect(primary.status().mergedIn).toBe(3);
    const conflicts = events.find((e) => e.type === 'files_merge_conflicts');
    expect(conflicts?.details?.paths).toEqual(['etc/conflict.conf']);
    const gone = events.find((e) => e.type === 'files_merge_deleted_on_primary');
    expect(gone?.details?.paths).toEqual(['etc/gone.conf']);
    expect(events.find((e) => e.type === 'files_merge_done')?.details).toMatchObject({ merged: 3, conflicts: 1, deletedOnPrimary: 1 });
  });

  it('a file the primary had received and no longer has is not brought back', async () => {
    const mb = mergeBack('merge');
    await mb.markPrimary({ node: 'b', epoch: 2 });
    await sleep(30);
    writeFileSync(join(S, 'old.conf'), 'changed on b as primary\n');
    rmSync(join(P, 'old.conf'));
    // The primary had received old.conf while it was standby.
    isPrimary = false;
    await primary.applyBatch({ tree: 'etc', entries: [{ op: 'file', path: 'old.conf', mode: 0o644, mtimeMs: Date.now(), sha256: sha('old\n'), data: Buffer.from('old\n').toString('base64') }] });
    rmSync(join(P, 'old.conf'));
    isPrimary = true;
    mb.start(() => 'http://primary');
    await until('merge done', () => events.some((e) => e.type === 'files_merge_done'));
    expect(existsSync(join(P, 'old.conf'))).toBe(false);
    expect(events.find((e) => e.type === 'files_merge_deleted_on_primary')?.details?.paths).toEqual(['etc/old.conf']);
  });

  it('keep: nothing is written on the primary; an event lists what it lacks or holds otherwise', async () => {
    const mb = mergeBack('keep');
    await writeAsPrimary(mb);
    mb.start(() => 'http://primary');
    await until('done', () => events.some((e) => e.type === 'files_merge_done'));
    expect(existsSync(join(P, 'new.conf'))).toBe(false);
    expect(primary.status().mergedIn).toBe(0);
    const kept = events.find((e) => e.type === 'files_merge_kept');
    expect(kept?.details?.paths).toEqual(['etc/conflict.conf', 'etc/new.conf', 'etc/q/aside.conf', 'etc/sub/deep.conf']);
  });

  it('a node never primary merges nothing; a node not primary refuses merges', async () => {
    const t = new ToPrimary();
    const mb = mergeBack('merge', t);
    expect(mb.rejoining).toBe(false);
    mb.start(() => 'http://primary');
    await sleep(200);
    expect(t.requests).toBe(0);
    isPrimary = false;
    await expect(primary.acceptMerge({ tree: 'etc', entries: [] }, 'b')).rejects.toThrow(/not the primary/);
  });

  it('a peer still finishing its promotion refuses (409): asked again quietly, merged once it is primary', async () => {
    const t = new ToPrimary();
    const mb = mergeBack('merge', t);
    await writeAsPrimary(mb);
    isPrimary = false; // the handover's target has not finished promoting yet
    mb.start(() => 'http://primary');
    await until('a few refused asks', () => t.requests >= 3);
    expect(mb.rejoining).toBe(true);
    expect(mb.status().lastError).toMatch(/not the primary/);
    isPrimary = true;
    await until('merge done', () => events.some((e) => e.type === 'files_merge_done'));
    expect(events.some((e) => e.type === 'files_merge_failed')).toBe(false);
    expect(readFileSync(join(P, 'new.conf'), 'utf8')).toBe('new on b\n');
  });

  it('a peer that keeps refusing past the quiet window is a failure (event), as an unreachable one is', async () => {
    let t = 0;
    const t2 = new ToPrimary();
    const mb = new FilesMergeBack({
      trees: [{ name: 'etc', path: S, exclude: ['*.swp'] }],
      quarantineDir: QS,
      policy: 'merge',
      transport: t2,
      lastReceived: (tree, r) => standbyRx.lastReceived(tree, r),
      events: { emit: (e) => events.push(e as Ev) },
      stepMs: 50,
      clock: { ...systemClock, monotonicMs: () => t },
    });
    await writeAsPrimary(mb);
    isPrimary = false;
    mb.start(() => 'http://primary');
    await until('refused asks', () => t2.requests >= 2);
    expect(events.some((e) => e.type === 'files_merge_failed')).toBe(false);
    t += 10_001;
    await until('failure reported', () => events.some((e) => e.type === 'files_merge_failed'));
    expect(mb.rejoining).toBe(true);
    mb.stop();
  });

  it('the primary is unreachable: the standby stays not caught up and retries', async () => {
    const failing: PeerTransport = {
      post: async () => {
        throw new Error('connect ECONNREFUSED');
      },
      getStream: async () => {
        throw new Error('no');
      },
      putStream: async () => {
        throw new Error('no');
      },
    };
    const mb = mergeBack('merge', failing as unknown as ToPrimary);
    await writeAsPrimary(mb);
    mb.start(() => 'http://primary');
    await until('failure reported', () => events.some((e) => e.type === 'files_merge_failed'));
    expect(mb.rejoining).toBe(true);
    expect(mb.status().lastError).toMatch(/ECONNREFUSED/);
    mb.stop();
  });
});

describe('files merge-back: the primary’s tombstones', () => {
  // What the primary answers (dry run) for a path it lacks, by the time of its tombstone (on the path or
  // on a directory above it) against the offered copy's write time.
  const W = 1_000_000;
  const cases: Array<{ name: string; path: string; tomb?: { path: string; atMs: number }; writtenMs?: number; mtimeMs?: number; want: string }> = [
    { name: 'never deleted: merged', path: 'a.conf', want: 'merged' },
    { name: 'deleted after the copy was written: deleted', path: 'a.conf', tomb: { path: 'a.conf', atMs: W + 1 }, want: 'deleted' },
    { name: 'deleted before the copy was written: merged', path: 'a.conf', tomb: { path: 'a.conf', atMs: W - 1 }, want: 'merged' },
    { name: 'deleted in the same millisecond: merged', path: 'a.conf', tomb: { path: 'a.conf', atMs: W }, want: 'merged' },
    { name: 'its directory deleted after the copy was written: deleted', path: 'd/e/a.conf', tomb: { path: 'd', atMs: W + 1 }, want: 'deleted' },
    { name: 'its directory deleted before: merged', path: 'd/e/a.conf', tomb: { path: 'd', atMs: W - 1 }, want: 'merged' },
    { name: 'another path deleted: merged', path: 'a.conf', tomb: { path: 'a.conf.bak', atMs: W + 1 }, want: 'merged' },
    { name: 'no writtenMs (an older standby): its mtime stands for it', path: 'a.conf', tomb: { path: 'a.conf', atMs: W + 1 }, writtenMs: -1, mtimeMs: W + 2, want: 'merged' },
  ];
  for (const c of cases) {
    it(c.name, async () => {
      let now = W + 1;
      const ts = new FileTombstones(join(QP, 'table.jsonl'), { now: () => now });
      if (c.tomb) {
        now = c.tomb.atMs;
        await ts.deleted('etc', c.tomb.path);
      }
      const rx = new FileSyncReceiver({ trees: [{ name: 'etc', path: P, exclude: [] }], quarantineDir: QP, mergeAccepting: () => true, tombstones: ts });
      const entry = { path: c.path, mode: 0o644, mtimeMs: c.mtimeMs ?? W - 5_000, sha256: sha('x\n'), data: '', ...(c.writtenMs === -1 ? {} : { writtenMs: c.writtenMs ?? W }) };
      const r = await rx.acceptMerge(mergeRequestSchema.parse({ tree: 'etc', dryRun: true, entries: [entry] }), 'b');
      expect(r.results).toEqual([{ path: c.path, outcome: c.want }]);
      await ts.close();
    });
  }

  it('a path the primary holds follows the conflict rules whatever its tombstone says', async () => {
    let now = 5_000;
    const ts = new FileTombstones(undefined, { now: () => now });
    await ts.deleted('etc', 'held.conf');
    now = 6_000;
    writeFileSync(join(P, 'held.conf'), 'written again\n');
    const rx = new FileSyncReceiver({ trees: [{ name: 'etc', path: P, exclude: [] }], quarantineDir: QP, mergeAccepting: () => true, tombstones: ts });
    const entries = [
      { path: 'held.conf', mode: 0o644, mtimeMs: 1_000, writtenMs: 1_000, sha256: sha('written again\n'), data: '' },
    ];
    expect((await rx.acceptMerge({ tree: 'etc', dryRun: true, entries }, 'b')).results).toEqual([{ path: 'held.conf', outcome: 'same' }]);
    entries[0].sha256 = sha('other\n');
    expect((await rx.acceptMerge({ tree: 'etc', dryRun: true, entries }, 'b')).results).toEqual([{ path: 'held.conf', outcome: 'conflict' }]);
  });

  it('tombstones outlive a restart and a promotion: a journal reloaded from disk still keeps the path deleted', async () => {
    await tombstones.deleted('etc', 'gone.conf', 3);
    await tombstones.close();
    const reloaded = new FileTombstones(join(QP, TOMBSTONES_FILE));
    await reloaded.load();
    expect(reloaded.newest('etc', 'gone.conf')?.epoch).toBe(3);
    expect(reloaded.deletedAfter('etc', 'gone.conf', Date.now() - 60_000)).toBe(true);
    await reloaded.close();
  });

  it('a delete the receiver applies as standby is journaled; the file written again drops it', async () => {
    isPrimary = false;
    writeFileSync(join(P, 'old.conf'), 'old\n');
    await primary.applyBatch({ tree: 'etc', entries: [{ op: 'delete', path: 'old.conf' }] });
    expect(tombstones.newest('etc', 'old.conf')).toBeDefined();
    await sleep(5);
    await primary.applyBatch({ tree: 'etc', entries: [{ op: 'file', path: 'old.conf', mode: 0o644, mtimeMs: Date.now(), sha256: sha('again\n'), data: Buffer.from('again\n').toString('base64') }] });
    await until('tombstone dropped', () => tombstones.newest('etc', 'old.conf') === undefined);
  });
});
