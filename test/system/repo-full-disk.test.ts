/**
 * The standby's repository runs out of space: a real s3rver on a small tmpfs (root only: mount). The
 * replicator must fail the pass clearly, keep everything the target already had, never present a partial
 * object as a copy, report the failure once, and finish by itself once space is freed.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startCumulus, type CumulusHandle } from '../../fixtures/cumulus/server.js';
import { S3Store } from '../../adapters/cumulus/s3-store.js';
import { EventBus } from '../../src/events/bus.js';
import { RepoReplicator } from '../../src/replication/repo/replicator.js';
import { ACCESS, SECRET, MiB, listing, md5, putBytes, readBytes, RepoLab } from '../integration/repo-helpers.js';
import { tmpfsUnavailable } from '../helpers/root.js';
import { sleep as delay, until } from '../helpers/wait.js';

const skipReason = tmpfsUnavailable();
if (skipReason) console.warn(`skipping full-repository system test: ${skipReason}`);

describe.skipIf(skipReason !== null)('standby repository on a full disk (tmpfs, real s3rver)', () => {
  const lab = new RepoLab();
  let mnt = '';
  let mounted = false;
  let cumulus: CumulusHandle | null = null;
  let target: S3Store | null = null;
  let rep: RepoReplicator | null = null;

  beforeAll(() => {
    mnt = mkdtempSync(join(tmpdir(), 'nha-full-'));
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=12m,mode=0755', 'tmpfs', mnt]);
    mounted = true;
  });
  afterAll(async () => {
    await rep?.stop();
    target?.close();
    await cumulus?.close();
    await lab.close();
    if (mounted) execFileSync('umount', ['-l', mnt]);
    rmSync(mnt, { recursive: true, force: true });
  });

  it('fails the pass clearly, keeps what the target had, shows no partial object, and recovers once space is freed', async () => {
    const src = await lab.repo();
    cumulus = await startCumulus({ dir: join(mnt, 'cumulus'), accessKeyId: ACCESS, secretAccessKey: SECRET, multipart: true });
    target = new S3Store({ endpoint: cumulus.url, bucket: 'Repo', accessKeyId: ACCESS, secretAccessKey: SECRET, partSize: 5 * MiB, multipartThreshold: 5 * MiB });

    // What the standby already holds (also on the source): must survive the full disk untouched.
    const kept = new Map<string, Buffer>();
    for (let i = 0; i < 3; i++) {
      const b = randomBytes(512 * 1024);
      kept.set(`VMS/common/kept-${i}.img`, b);
      await putBytes(src.store, `VMS/common/kept-${i}.img`, b);
      await putBytes(target, `VMS/common/kept-${i}.img`, b);
    }
    // New images: 4 × 4 MiB do not fit in what is left of 12 MiB.
    const fresh = new Map<string, Buffer>();
    for (let i = 0; i < 4; i++) {
      const b = randomBytes(4 * MiB);
      fresh.set(`VMS/common/new-${i}.img`, b);
      await putBytes(src.store, `VMS/common/new-${i}.img`, b);
    }
    const all = new Map([...kept, ...fresh]);

    const bus = new EventBus('standby', () => 2);
    rep = new RepoReplicator({ source: src.store, target, bus, intervalMs: 200, deepVerifyCron: '' });
    rep.start();
    await until('three failed passes', async () => rep!.status().failedPasses >= 3, 30_000, 100);
    // Passes that keep failing back off instead of streaming the same images every interval.
    await until('the back-off to reach 800 ms', async () => rep!.status().backoffMs >= 800, 30_000, 100);
    const failedSoFar = rep.status().failedPasses;
    await delay(1500);
    expect(rep.status().failedPasses - failedSoFar).toBeLessThanOrEqual(2);
    const st = rep.status();
    expect(st.lastError).toMatch(/no space left on the repository volume/);
    expect(st.objectsBehind).toBeGreaterThan(0);
    // Reported once, not once per pass.
    expect(bus.recent({ types: ['repo_pass_failed'] })).toHaveLength(1);

    // Every object the target lists is a complete, correct copy; what it had is still there.
    const listed = await listing(target);
    for (const key of kept.keys()) expect(listed.has(key)).toBe(true);
    for (const key of listed.keys()) {
      expect(all.has(key)).toBe(true);
      expect(md5(await readBytes(target, key))).toBe(md5(all.get(key)!));
    }
    expect(listed.size).toBeLessThan(all.size);

    // Space freed (the operator grows the volume): the loop finishes by itself.
    execFileSync('mount', ['-o', 'remount,size=64m', mnt]);
    await until('the standby caught up after the volume grew', async () => rep!.status().lastError === null && rep!.status().objectsBehind === 0, 60_000, 100);
    expect(rep.status().backoffMs).toBe(0);
    const after = await listing(target);
    expect([...after.keys()].sort()).toEqual([...all.keys()].sort());
    for (const [key, b] of all) expect(md5(await readBytes(target, key))).toBe(md5(b));
    expect(bus.recent({ types: ['repo_caught_up'] })).toHaveLength(1);
  });
});
