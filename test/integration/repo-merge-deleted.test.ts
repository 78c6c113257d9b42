/**
 * Image repository (repo.mode sync): a delete acknowledged through the repository VIP while the old
 * primary was away stays deleted when it rejoins (real processes: sidecars, witness, s3rver, VIP).
 *
 * a is primary; a is killed -9 with its Cumulus; b takes over. Two images reach a's repository alone
 * while b is primary (a's Cumulus alone is started, written to directly, and stopped: what an upload
 * that reached a's repository and was never acknowledged leaves behind). A client then deletes one of
 * them, del.img, through the repository VIP (b's front acknowledges it alone). When a rejoins, its first
 * pass moves both aside; keep.img (never deleted) is merged back to b as before; del.img is not, stays in
 * a's quarantine, and repo.quarantine.deleted_on_primary lists it.
 */
import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { S3Store } from '../../adapters/cumulus/s3-store.js';
import { Cluster, CUMULUS_KEY, CUMULUS_SECRET, waitPort } from '../../fixtures/cluster.js';
import { QUARANTINE_PREFIX } from '../../src/replication/repo/types.js';
import { sleep, until } from '../helpers/wait.js';

const md5 = (b: Buffer) => createHash('md5').update(b).digest('hex');

let cluster: Cluster | null = null;
const stores: S3Store[] = [];
afterEach(async () => {
  for (const s of stores.splice(0)) s.close();
  await cluster?.stop();
  cluster = null;
});

function store(endpoint: string): S3Store {
  const s = new S3Store({ endpoint, bucket: 'Repo', accessKeyId: CUMULUS_KEY, secretAccessKey: CUMULUS_SECRET, signatureVersion: 'v2', multipart: false, maxAttempts: 1 });
  stores.push(s);
  return s;
}

async function objectMd5(s: S3Store, key: string): Promise<string | null> {
  try {
    const h = createHash('md5');
    for await (const c of await s.get(key)) h.update(c as Buffer);
    return h.digest('hex');
  } catch {
    return null;
  }
}

describe('image repository: deletes on the primary survive a merge-back (real processes)', () => {
  it('an image deleted through the VIP while the old primary was away is not merged back; an image never deleted is', async () => {
    const c = (cluster = new Cluster({ repo: true, repoMode: 'sync' }));
    await c.start();
    await c.waitFor((a, b) => a?.role === 'primary' && b?.role === 'standby', 30_000, 'a primary, b standby');
    await until('front in sync, b named holder', async () => {
      const f = (await c.status('a'))?.replication?.repo?.front;
      return f?.state === 'sync' && f.standbyHolds === true;
    }, 120_000);
    const vip = store(c.repoUrl);
    // Seeded through the VIP (on both): a rejoin's pass may then delete the two extra objects on a.
    for (let i = 0; i < 30; i++) {
      const body = randomBytes(2048);
      await vip.put(`VMS/shared/seed-${String(i).padStart(2, '0')}.img`, Readable.from([body]), body.length);
    }

    c.kill('a', true);
    await c.waitFor((_a, b) => b?.role === 'primary', 30_000, 'b primary');

    // Two images reach a's repository alone while a's sidecar is down.
    c.startCumulus('a');
    await waitPort(c.nodes.a.cumulusPort, 15_000);
    const onA = store(`http://127.0.0.1:${c.nodes.a.cumulusPort}`);
    const lone = { del: randomBytes(30_000), keep: randomBytes(31_000) };
    await onA.put('VMS/tester/del.img', Readable.from([lone.del]), lone.del.length);
    await onA.put('VMS/tester/keep.img', Readable.from([lone.keep]), lone.keep.length);
    c.nodes.a.cumulus?.kill('SIGKILL');
    c.nodes.a.cumulus = null;
    await sleep(1_100);

    // A client deletes del.img through the repository VIP (b's front, acknowledging alone).
    await until('delete acknowledged through the VIP', async () => {
      await vip.delete('VMS/tester/del.img');
      return true;
    }, 30_000);
    const onB = store(`http://127.0.0.1:${c.nodes.b.cumulusPort}`);
    expect(await onB.head('VMS/tester/del.img')).toBeNull();
    expect(await onB.head('VMS/tester/keep.img')).toBeNull();

    // a rejoins.
    c.startCumulus('a');
    c.startService('a');
    await waitPort(c.nodes.a.cumulusPort, 15_000);
    c.startNode('a');
    await c.waitFor((a, b) => a?.role === 'standby' && b?.role === 'primary', 60_000, 'a rejoined as standby');
    let merged: any = null;
    await until('merge-back done on a', async () => {
      merged = (await c.events('a', 'repo.quarantine.merged')).at(-1) ?? null;
      return merged !== null;
    }, 90_000);

    // Control: the image never deleted is back on b (and on a).
    expect(await objectMd5(onB, 'VMS/tester/keep.img')).toBe(md5(lone.keep));
    await until('keep.img pulled back into a', async () => (await objectMd5(onA, 'VMS/tester/keep.img')) === md5(lone.keep), 30_000);
    // The deleted one stays deleted on b, and a keeps its copy in quarantine.
    expect(await onB.head('VMS/tester/del.img')).toBeNull();
    expect(await onA.head('VMS/tester/del.img')).toBeNull();
    const aside: string[] = [];
    for await (const o of onA.list(QUARANTINE_PREFIX)) if (o.key.endsWith('/VMS/tester/del.img')) aside.push(o.key);
    expect(aside.length).toBeGreaterThanOrEqual(1);
    expect(await objectMd5(onA, aside[0])).toBe(md5(lone.del));
    const gone = await c.events('a', 'repo.quarantine.deleted_on_primary');
    expect(gone.flatMap((e) => e.details.keys)).toContain('VMS/tester/del.img');
    expect(gone.flatMap((e) => e.details.keys)).not.toContain('VMS/tester/keep.img');
    expect(gone[0].message).toMatch(/deleted on the primary after this node left: kept in quarantine, not merged/);
    expect(merged.details).toMatchObject({ merged: 1, deletedOnPrimary: 1 });
  }, 300_000);
});
