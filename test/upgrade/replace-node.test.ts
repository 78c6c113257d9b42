/**
 * Replacing a node whose disks are gone (docs/operations.md, "Replacing a node"): the standby's whole
 * data directory (epoch store, database, repository, config tree, history) is removed and the node is
 * started from its config alone. It must come back as a standby of the running primary — base backup,
 * repository and config-tree sync — and be able to take over with nothing acknowledged lost. Real sidecars,
 * witness, embedded PostgreSQL (sync), Cumulus stand-ins behind the write-through front, independent
 * writers that record what was acknowledged.
 */
import { mkdirSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { S3Store } from '../../adapters/cumulus/s3-store.js';
import { Cluster, CUMULUS_KEY, CUMULUS_SECRET, SplitBrainChecker } from '../../fixtures/cluster.js';
import { DbWriter } from '../../fixtures/db-writer.js';
import { FileWriter, Uploader, objectMd5, store } from '../../src/cli/chaos/load.js';

/** A client of the repository VIP: the write-through front takes signature version 2, as Cumulus does. */
const frontClient = (endpoint: string) =>
  new S3Store({ endpoint, bucket: 'Repo', accessKeyId: CUMULUS_KEY, secretAccessKey: CUMULUS_SECRET, signatureVersion: 'v2', multipart: false, maxAttempts: 1 });
import { directDb as direct, until } from '../helpers/wait.js';

const md5 = (b: Buffer | string) => createHash('md5').update(b).digest('hex');

describe('replacing a node with empty disks (real processes on loopback)', () => {
  let c: Cluster;
  afterAll(async () => {
    await c?.stop();
  });

  it('a standby started with an empty data directory clones, syncs and takes over with nothing lost', async () => {
    c = new Cluster({ db: { sync: 'sync' }, repo: true, repoMode: 'sync', files: true });
    await c.start();
    await c.waitFor((a, b) => a?.role === 'primary' && b?.role === 'standby', 60_000, 'a primary');
    await until('b streaming', async () => (await c.status('b'))!.replication.db.streaming === true, 90_000);
    // The front acknowledges uploads once b is named a holder of the repository (two clean passes).
    await until('front in sync, b named holder', async () => {
      const f = (await c.status('a'))?.replication?.repo?.front;
      return f?.state === 'sync' && f.standbyHolds === true;
    }, 120_000);
    const w = new DbWriter(c.dbUrl, { everyMs: 20 });
    await w.prepare();
    w.start();
    const up = new Uploader(frontClient(c.repoUrl), 'VMS/replace/', 300);
    up.start();
    const files = new FileWriter((['a', 'b'] as const).map((n) => ({ name: n, url: c.nodes[n].url, etcDir: c.nodes[n].etcDir })), 300);
    files.start();
    const split = new SplitBrainChecker([c.nodes.a.url, c.nodes.b.url], 20);
    split.start();
    await until('some of everything acknowledged', async () => w.acked.length > 100 && up.acked.size > 5 && files.acked.size > 5, 60_000).catch((err: Error) => {
      throw new Error(`${err.message}: ${w.acked.length} rows, ${up.acked.size} images (${up.failed} failed), ${files.acked.size} files`);
    });

    // b's machine is gone: every process killed, its disks replaced by empty ones.
    c.kill('b', true);
    c.killDb('b');
    c.nodes.b.cumulus?.kill('SIGKILL');
    await until('b down', async () => (await c.status('b', 300)) === null, 10_000);
    const bDir = c.nodes.b.dataDir;
    for (const e of readdirSync(bDir)) rmSync(join(bDir, e), { recursive: true, force: true });
    mkdirSync(c.nodes.b.etcDir, { recursive: true });
    expect(readdirSync(bDir)).toEqual([c.nodes.b.etcDir.slice(bDir.length + 1).split('/')[0]]);
    const ackedWhileAway = w.acked.length;
    await until('a keeps acknowledging without b (degraded)', async () => w.acked.length > ackedWhileAway + 50, 60_000);
    expect((await c.status('a'))!.role).toBe('primary');

    // The new machine: same config, empty directories.
    c.startCumulus('b');
    c.startNode('b');
    await c.waitFor((a, b) => a?.role === 'primary' && b?.role === 'standby', 120_000, 'b back as standby');
    await until('b caught up on every data path', async () => {
      const a = (await c.status('a'))!;
      const b = (await c.status('b'))!;
      return b.replication.db.streaming === true && a.peers[0].caught_up === true && a.replication.repo?.front?.state === 'sync' && a.replication.repo?.front?.standbyHolds === true;
    }, 240_000);
    const cloned = await c.events('b', 'db.cloned');
    expect(cloned.length).toBeGreaterThan(0);

    // Everything acknowledged so far is on b; then b takes over by switchover and writes go on there.
    // Under load the standby's "caught up" flickers (a batch of files or an upload in flight): a switchover
    // refused for lag (409) is asked again, as an operator would.
    let sw = { status: 0, data: null as unknown };
    await until('switchover accepted', async () => {
      sw = await c.admin('a', '/admin/switchover', {});
      if (sw.status !== 202 && sw.status !== 409) throw new Error(`switchover: ${sw.status} ${JSON.stringify(sw.data)}`);
      return sw.status === 202;
    }, 60_000, 2000);
    await c.waitFor((a, b) => b?.role === 'primary' && a?.role === 'standby', 60_000, 'b primary');
    const atSwitch = w.acked.length;
    await until('writes go on through b', async () => w.acked.length > atSwitch + 50, 60_000);
    await w.stop();
    await up.stop();
    await files.stop();
    split.stop();

    expect(await w.missing(direct(c.nodes.b.pgPort))).toEqual([]);
    const bStore = store(`http://127.0.0.1:${c.nodes.b.cumulusPort}`);
    const missingImages: string[] = [];
    for (const [key, sum] of up.acked) if ((await objectMd5(bStore, key)) !== sum) missingImages.push(key);
    expect(missingImages).toEqual([]);
    await until('every acknowledged config file on b', async () => {
      for (const [rel, sum] of files.acked) {
        try {
          if (md5(readFileSync(join(c.nodes.b.etcDir, rel))) !== sum) return false;
        } catch {
          return false;
        }
      }
      return true;
    }, 60_000);
    expect(split.observed).toBe(0);
    expect(await c.events('b', 'failover')).toEqual([]);
    expect(up.acked.size).toBeGreaterThan(5);
    expect(files.acked.size).toBeGreaterThan(5);
  }, 900_000);
});
