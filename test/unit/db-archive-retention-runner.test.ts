import { mkdir, mkdtemp, readdir, rename, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ArchiveRetention, pruneOldCopies, readRecloneMarks, restartPointOf, writeRecloneMarks } from '../../src/replication/db/archive-retention-runner.js';
import { walFileNameOf } from '../../src/replication/db/archive-retention.js';
import type { EventInput } from '../../src/events/bus.js';

const SEG = 1024 * 1024; // 1 MiB segments keep the files small
let dir: string | null = null;
afterEach(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
  dir = null;
});

async function archiveWith(n: number): Promise<string> {
  dir = await mkdtemp(join(tmpdir(), 'nha-arch-'));
  const a = join(dir, 'archive');
  await mkdir(a);
  const old = new Date(Date.now() - 48 * 3_600_000);
  for (let i = 0; i < n; i++) {
    const p = join(a, walFileNameOf(1, i * SEG, SEG));
    await writeFile(p, Buffer.alloc(SEG));
    await utimes(p, old, old);
  }
  await writeFile(join(a, '00000002.history'), '1\t0/3000000\tno recovery target specified\n');
  return a;
}

describe('WAL archive retention on a directory', () => {
  it('removes what no reader needs, keeps history files', async () => {
    const a = await archiveWith(6);
    const r = new ArchiveRetention({ archiveDir: a, policy: { maxAgeMs: 0, keepBytes: 0, maxBytes: 0, segmentBytes: SEG }, readers: async () => [{ name: 'b', restartBytes: 4 * SEG + 10 }] });
    const pass = await r.runOnce();
    expect(pass.remove).toHaveLength(4);
    expect((await readdir(a)).sort()).toEqual([walFileNameOf(1, 4 * SEG, SEG), walFileNameOf(1, 5 * SEG, SEG), '00000002.history']);
    expect(await readRecloneMarks(a)).toEqual([]);
  });

  it('the hard cap removes needed WAL, marks the reader for re-clone once, with a critical event', async () => {
    const a = await archiveWith(10);
    const events: EventInput[] = [];
    const r = new ArchiveRetention({
      archiveDir: a,
      policy: { maxAgeMs: 24 * 3_600_000, keepBytes: 2048 * SEG, maxBytes: 4 * SEG, segmentBytes: SEG },
      readers: async () => [{ name: 'b', restartBytes: SEG }],
      emit: (e) => events.push(e),
    });
    const pass = await r.runOnce();
    expect(pass.forced.length).toBe(7);
    expect(pass.lost).toEqual(['b']);
    expect(await readRecloneMarks(a)).toEqual(['b']);
    expect(events.map((e) => `${e.type}/${e.severity}`)).toEqual(['db.archive.cap_reached/warning', 'db.archive.reclone_needed/critical']);
    expect((await readdir(a)).filter((n) => n.endsWith('.history'))).toEqual(['00000002.history']);
    await r.runOnce();
    expect(events.filter((e) => e.type === 'db.archive.reclone_needed')).toHaveLength(1);
    await writeRecloneMarks(a, []);
    expect(await readRecloneMarks(a)).toEqual([]);
  });

  it('a segment landing in a watched archive runs a pass at once: the cap holds between the periodic passes', async () => {
    const a = await archiveWith(3);
    let open = false;
    const r = new ArchiveRetention({
      archiveDir: a,
      policy: { maxAgeMs: 24 * 3_600_000, keepBytes: 2048 * SEG, maxBytes: 5 * SEG + 1024, headroomBytes: SEG, segmentBytes: SEG }, // + room for the history file
      readers: async () => [],
    });
    await r.watch(() => open);
    const total = async () => (await readdir(a)).filter((n) => n.length === 24).length;
    const land = async (i: number) => {
      // as archive_command does it: a temp copy, then a rename
      const p = join(a, walFileNameOf(1, i * SEG, SEG));
      await writeFile(`${p}.tmp`, Buffer.alloc(SEG));
      await rename(`${p}.tmp`, p);
    };
    await land(3);
    await land(4);
    await new Promise((res) => setTimeout(res, 300));
    expect(await total()).toBe(5); // the gate was shut: nothing ran
    open = true;
    await land(5);
    const until = Date.now() + 5000;
    while ((await total()) > 4 && Date.now() < until) await new Promise((res) => setTimeout(res, 20));
    expect(await total()).toBe(4); // cap 5 segments minus one of room
    for (let i = 6; i < 12; i++) await land(i);
    while ((await total()) > 4 && Date.now() < until) await new Promise((res) => setTimeout(res, 20));
    expect((await readdir(a)).filter((n) => n.length === 24).sort()).toEqual([8, 9, 10, 11].map((i) => walFileNameOf(1, i * SEG, SEG)));
    r.unwatch();
    await land(12);
    await new Promise((res) => setTimeout(res, 300));
    expect(await total()).toBe(5); // unwatched: only a periodic pass would prune now
  });

  it('reads the restart point (REDO) from pg_control', async () => {
    dir = await mkdtemp(join(tmpdir(), 'nha-ctl-'));
    await mkdir(join(dir, 'global'));
    const b = Buffer.alloc(64);
    b.writeUInt32LE(0x2000028, 40);
    b.writeUInt32LE(0x1, 44);
    await writeFile(join(dir, 'global', 'pg_control'), b);
    expect(await restartPointOf(dir)).toBe(2 ** 32 + 0x2000028);
    expect(await restartPointOf(join(dir, 'missing'))).toBeNull();
  });

  it('keeps only the newest <dataDir>.old-* copy', async () => {
    dir = await mkdtemp(join(tmpdir(), 'nha-old-'));
    for (const s of ['2026-01-01T00-00-00-000Z', '2026-02-01T00-00-00-000Z', '2026-03-01T00-00-00-000Z']) await mkdir(join(dir, `pg.old-${s}`));
    await mkdir(join(dir, 'pg'));
    const gone = await pruneOldCopies(join(dir, 'pg'), 1);
    expect(gone).toHaveLength(2);
    expect((await readdir(dir)).sort()).toEqual(['pg', 'pg.old-2026-03-01T00-00-00-000Z']);
  });
});
