/**
 * Merge-back of quarantined objects on rejoin, through the repository data path against two real
 * Cumulus stand-ins (s3rver): node a was primary and holds images b never received; b took over and has
 * its own uploads (one under a key a also holds, with other content). When a rejoins as standby, its
 * first pass moves a's extra objects aside, the keeper copies those whose keys b lacks to b, the next pass
 * brings them back into a, and only then do their quarantined copies go. The conflicting key stays in
 * quarantine with an event naming it. Quarantine from before a was primary is never merged back.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { EventBus } from '../../src/events/bus.js';
import type { HaEvent, HookContext } from '../../src/ports.js';
import { RepoDataPath } from '../../src/replication/repo/data-path.js';
import { repoConfigSchema } from '../../src/replication/repo/config.js';
import { PRIMARY_MARKER_KEY } from '../../src/replication/repo/quarantine-keeper.js';
import { QUARANTINE_PREFIX } from '../../src/replication/repo/types.js';
import { ACCESS, SECRET, RepoLab, fillSmall, listing, md5, putBytes, readBytes, type Repo } from './repo-helpers.js';

const lab = new RepoLab();
let a: Repo;
let b: Repo;
const paths: RepoDataPath[] = [];

beforeAll(async () => {
  delete process.env.AWS_CA_BUNDLE;
});
afterEach(async () => {
  for (const p of paths.splice(0)) await p.close();
  await lab.close();
});
afterAll(async () => {
  await lab.close();
});

function store(r: Repo) {
  return { endpoint: r.cumulus.url, bucket: 'Repo', accessKeyId: ACCESS, secretAccessKey: SECRET };
}

/** `recentWriteGraceMs` 0 (async's default): the rejoin's first pass moves this node's lonely uploads aside at once; with mode sync's 5 s they are merged from the bucket. */
function dataPath(me: Repo, other: Repo, quarantine: Record<string, unknown> = {}, recentWriteGraceMs?: number) {
  const events: HaEvent[] = [];
  const bus = new EventBus('a', () => 2);
  bus.on((e) => events.push(e));
  const p = new RepoDataPath({
    config: repoConfigSchema.parse({ local: store(me), peer: store(other), intervalMs: 200, conflictPolicy: 'quarantine', quarantine }),
    local: me.store,
    peer: other.store,
    bus,
    ...(recentWriteGraceMs !== undefined ? { recentWriteGraceMs } : {}),
  });
  paths.push(p);
  return { p, events };
}

const ctx = (epoch: number) => ({ node: 'a', epoch, peer: null, peerIsHolder: false }) as unknown as HookContext;

async function waitFor(what: string, cond: () => Promise<boolean> | boolean, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await cond()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
}

const quarantined = async (r: Repo) => [...(await listing(r.store)).keys()].filter((k) => k.startsWith(QUARANTINE_PREFIX) && k !== PRIMARY_MARKER_KEY);

describe('quarantine merge-back on rejoin', () => {
  it('merges back what the new primary lacks, keeps the conflicting key in quarantine with an event', async () => {
    a = await lab.repo();
    b = await lab.repo();
    // Both held these before the failover.
    const shared = await fillSmall(a.store, 40, 'VMS/shared/');
    for (const [k, v] of shared) await putBytes(b.store, k, v);
    // Quarantine a already had from an earlier stint as standby: not part of this rejoin.
    await putBytes(a.store, `${QUARANTINE_PREFIX}old-event/VMS/old/deleted.img`, randomBytes(2048));
    await new Promise((r) => setTimeout(r, 1100)); // a later second than the marker's

    const { p, events } = dataPath(a, b, {}, 0);
    await p.start();
    await p.onPromote(ctx(1));
    // Uploads a acknowledged alone before it died (b never pulled them), one of them under a key b reuses.
    const lonely = new Map<string, Buffer>();
    for (let i = 0; i < 3; i++) lonely.set(`VMS/u1/lonely-${i}.img`, randomBytes(30_000 + i));
    lonely.set('VMS/u1/clash.img', randomBytes(5000));
    for (const [k, v] of lonely) await putBytes(a.store, k, v);
    // b, primary now, takes its own uploads.
    const clash = randomBytes(6000);
    await putBytes(b.store, 'VMS/u1/clash.img', clash);
    await putBytes(b.store, 'VMS/u2/new-on-b.img', randomBytes(7000));
    await waitFor('marker', async () => (await a.store.head(PRIMARY_MARKER_KEY)) !== null);

    // a rejoins as standby of b.
    await p.onDemote({ ...ctx(2), to: 'standby' });
    expect(p.caughtUp()).toBe(false);
    await waitFor('merge done', () => events.some((e) => e.type === 'repo.quarantine.merged'));
    await waitFor('caught up', () => p.caughtUp());

    const onB = await listing(b.store);
    const onA = await listing(a.store);
    for (let i = 0; i < 3; i++) {
      const k = `VMS/u1/lonely-${i}.img`;
      expect(md5(await readBytes(b.store, k))).toBe(md5(lonely.get(k)!));
      expect(md5(await readBytes(a.store, k))).toBe(md5(lonely.get(k)!));
    }
    // The primary's content wins under the clashing key; a's version stays aside, named by an event.
    expect(md5(await readBytes(b.store, 'VMS/u1/clash.img'))).toBe(md5(clash));
    expect(md5(await readBytes(a.store, 'VMS/u1/clash.img'))).toBe(md5(clash));
    const left = await quarantined(a);
    expect(left.filter((k) => k.endsWith('/VMS/u1/clash.img'))).toHaveLength(1);
    expect(md5(await readBytes(a.store, left.find((k) => k.endsWith('/VMS/u1/clash.img'))!))).toBe(md5(lonely.get('VMS/u1/clash.img')!));
    expect(left.some((k) => k.includes('lonely'))).toBe(false);
    // Quarantine from before a was primary is not merged back.
    expect(left).toContain(`${QUARANTINE_PREFIX}old-event/VMS/old/deleted.img`);
    expect(onB.has('VMS/old/deleted.img')).toBe(false);
    expect(onA.has(PRIMARY_MARKER_KEY)).toBe(false);

    const conflict = events.find((e) => e.type === 'repo.quarantine.conflicts');
    expect(conflict?.details).toMatchObject({ count: 1, keys: ['VMS/u1/clash.img'] });
    expect(events.find((e) => e.type === 'repo.quarantine.merged')?.details).toMatchObject({ merged: 3, dropped: 3, conflicts: 1 });
    expect(p.status().quarantine).toMatchObject({ policy: 'merge', rejoining: false, merged: 3, conflicts: ['VMS/u1/clash.img'] });
  });

  it.each([
    ['the delete guard keeps the pass from moving them aside', 0],
    ['they are too recent for the pass to move aside (mode sync\'s grace)', 5000],
  ] as const)('merges back straight from the bucket when %s', async (_why, grace) => {
    a = await lab.repo();
    b = await lab.repo();
    for (const [k, v] of await fillSmall(b.store, 5, 'VMS/shared/')) await putBytes(a.store, k, v);
    const { p, events } = dataPath(a, b, {}, grace);
    await p.start();
    await p.onPromote(ctx(1));
    // 4 of a's 9 objects are missing on b: far more than maxDeleteFraction (0.1) lets a pass delete.
    const lonely = new Map<string, Buffer>();
    for (let i = 0; i < 4; i++) lonely.set(`VMS/u1/lonely-${i}.img`, randomBytes(9000 + i));
    for (const [k, v] of lonely) await putBytes(a.store, k, v);
    await waitFor('marker', async () => (await a.store.head(PRIMARY_MARKER_KEY)) !== null);

    await p.onDemote({ ...ctx(2), to: 'standby' });
    await waitFor('merge done', () => events.some((e) => e.type === 'repo.quarantine.merged'));
    await waitFor('caught up', () => p.caughtUp());
    expect(events.some((e) => e.type === 'repo_delete_guard')).toBe(grace === 0);
    for (const [k, v] of lonely) {
      expect(md5(await readBytes(b.store, k))).toBe(md5(v));
      expect(md5(await readBytes(a.store, k))).toBe(md5(v));
    }
    expect(await quarantined(a)).toEqual([]);
    expect(events.find((e) => e.type === 'repo.quarantine.merged')?.details).toMatchObject({ merged: 4, dropped: 0, conflicts: 0 });
  });

  it('policy keep leaves everything in quarantine and lists the keys; a plain standby restart merges nothing', async () => {
    a = await lab.repo();
    b = await lab.repo();
    for (const [k, v] of await fillSmall(b.store, 10, 'VMS/shared/')) await putBytes(a.store, k, v);
    const first = dataPath(a, b, { policy: 'keep' });
    await first.p.start();
    await first.p.onPromote(ctx(1));
    await putBytes(a.store, 'VMS/u1/only-on-a.img', randomBytes(4000));
    await waitFor('marker', async () => (await a.store.head(PRIMARY_MARKER_KEY)) !== null);
    await first.p.onDemote({ ...ctx(2), to: 'standby' });
    await waitFor('kept event', () => first.events.some((e) => e.type === 'repo.quarantine.kept'));
    await waitFor('caught up', () => first.p.caughtUp());
    expect(first.events.find((e) => e.type === 'repo.quarantine.kept')?.details).toMatchObject({ count: 1, keys: ['VMS/u1/only-on-a.img'] });
    expect((await quarantined(a)).filter((k) => k.endsWith('/VMS/u1/only-on-a.img'))).toHaveLength(1);
    expect((await listing(b.store)).has('VMS/u1/only-on-a.img')).toBe(false);
    await first.p.close();

    // The primary deletes an image; a standby that was never primary since (no marker) just follows.
    await b.store.delete('VMS/shared/000.qcow2');
    const again = dataPath(a, b, { policy: 'merge' });
    await again.p.onFollow();
    await waitFor('delete replicated', async () => !(await listing(a.store)).has('VMS/shared/000.qcow2'));
    await waitFor('caught up', () => again.p.caughtUp());
    await new Promise((r) => setTimeout(r, 600));
    expect((await listing(b.store)).has('VMS/shared/000.qcow2')).toBe(false);
    expect(again.events.some((e) => e.type.startsWith('repo.quarantine.'))).toBe(false);
  });
});
