import { execFileSync } from 'node:child_process';
import type { Server } from 'node:http';
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import express from 'express';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PostgresNode } from '../../adapters/postgres/embedded.js';
import type { PeerTransport } from '../../src/ports.js';
import { captureRawBody, requirePeerAuth } from '../../src/peer/auth.js';
import { PeerClient } from '../../src/peer/client.js';
import { ArchiveShipper } from '../../src/replication/db/archive-shipper.js';
import { dbPeerRouter } from '../../src/replication/db/router.js';
import { HaError } from '../../src/errors.js';
import { DbFixture, q, until } from './db-fixture.js';

const SECRET = 'peer-secret-for-db-tests';

function owner(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  return {
    uid: Number(execFileSync('id', ['-u', 'postgres']).toString().trim()),
    gid: Number(execFileSync('id', ['-g', 'postgres']).toString().trim()),
  };
}

async function sidecar(node: PostgresNode, archiveDir: string, isPrimary: boolean): Promise<{ server: Server; url: string }> {
  const app = express();
  app.use(
    '/peer/db',
    express.json({ verify: captureRawBody }),
    requirePeerAuth(SECRET, { allowStream: true }),
    dbPeerRouter({ archiveDir, owner: owner(), baseBackup: isPrimary ? (o) => node.baseBackup(o) : undefined }),
  );
  const server = await new Promise<Server>((resolve) => {
    const s = app.listen(0, '127.0.0.1', () => resolve(s));
  });
  return { server, url: `http://127.0.0.1:${(server.address() as { port: number }).port}` };
}

describe('WAL archive shipping over the peer API', () => {
  const fx = new DbFixture();
  let primary: PostgresNode;
  let standby: PostgresNode;
  const servers: Server[] = [];
  const clientA = new PeerClient('alpha', SECRET);
  /** clientA, counting the questions (POSTs) it asks the standby's sidecar. */
  const counting = () => {
    let n = 0;
    const transport: PeerTransport = {
      post: (url, path, body, timeoutMs) => (n++, clientA.post(url, path, body, timeoutMs)),
      getStream: (url, path, timeoutMs) => clientA.getStream(url, path, timeoutMs),
      putStream: (url, path, body, size, timeoutMs) => clientA.putStream(url, path, body, size, timeoutMs),
    };
    return { transport, questions: () => n };
  };
  const clientB = new PeerClient('beta', SECRET);
  let alphaUrl = '';
  let betaUrl = '';

  beforeAll(async () => {
    await fx.setup();
    primary = await fx.node('alpha', { maxSlotWalKeepSize: '2MB', archiveTimeoutS: 2 });
    standby = await fx.node('beta');
    await primary.init({ template: fx.template });
    await q(primary, 'create table t (id int primary key, v text)');
    const a = await sidecar(primary, join(fx.root, 'alpha', 'archive'), true);
    const b = await sidecar(standby, join(fx.root, 'beta', 'archive'), false);
    servers.push(a.server, b.server);
    alphaUrl = a.url;
    betaUrl = b.url;
  });
  afterAll(async () => {
    clientA.close();
    clientB.close();
    for (const s of servers) s.close();
    await fx.teardown();
  });

  it('a base backup asked of a primary that is not ready yet answers 503 with a JSON reason, not an error page', async () => {
    const app = express();
    let notReady = true;
    app.use(
      '/peer/db',
      requirePeerAuth(SECRET, { allowStream: true }),
      dbPeerRouter({
        archiveDir: join(fx.root, 'not-ready'),
        // Throws at once, as the data path does while the promotion is under way.
        baseBackup: () => {
          if (notReady) throw new HaError('DB_FAILED', 'not a ready primary: no base backup here yet', { notReady: true });
          throw new Error('disk on fire');
        },
      }),
    );
    const server = await new Promise<Server>((resolve) => {
      const s = app.listen(0, '127.0.0.1', () => resolve(s));
    });
    servers.push(server);
    const url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
    const err = await clientB.getStream(url, '/peer/db/basebackup?slot=beta', 5000).then(() => null, (e: Error) => e);
    expect(err?.message).toMatch(/503/);
    expect(err?.message).toMatch(/not a ready primary/);
    expect(err?.message).not.toMatch(/<html|<!DOCTYPE/i);
    notReady = false;
    const err2 = await clientB.getStream(url, '/peer/db/basebackup?slot=beta', 5000).then(() => null, (e: Error) => e);
    expect(err2?.message).toMatch(/500/);
    expect(err2?.message).toMatch(/disk on fire/);
  });

  it('clones over GET /peer/db/basebackup with HMAC auth', async () => {
    const stream = await clientB.getStream(alphaUrl, `/peer/db/basebackup?slot=${standby.slotName}`, 60_000);
    await standby.clone(stream, primary.endpoint(), { force: false });
    await q(primary, "insert into t values (1, 'streamed')");
    await until(async () => (await q(standby, 'select 1 from t where id = 1')).length === 1, 20_000, 'row 1 on the standby');
  });

  it('refuses bad names, bad checksums and unsigned requests on the archive route', async () => {
    const { Readable } = await import('node:stream');
    const body = () => Readable.from([Buffer.from('x')]);
    await expect(clientA.putStream(betaUrl, `/peer/db/archive/..%2Fpg_hba.conf?sha256=${'0'.repeat(64)}`, body(), 1, 5_000)).rejects.toThrow(/HTTP 400/);
    await expect(clientA.putStream(betaUrl, `/peer/db/archive/000000010000000000000099?sha256=${'0'.repeat(64)}`, body(), 1, 5_000)).rejects.toThrow(/checksum mismatch/);
    const unsigned = await fetch(`${betaUrl}/peer/db/archive/list`, { method: 'POST', body: '{}', headers: { 'content-type': 'application/json' } });
    expect(unsigned.status).toBe(401);
    expect((await readdir(join(fx.root, 'beta', 'archive'))).filter((n) => !n.startsWith('.'))).not.toContain('000000010000000000000099');
  });

  it('a standby away longer than its slot allows catches up from the shipped archive', async () => {
    await standby.stop('fast');
    // ~6 MB of WAL with 1 MB segments and max_slot_wal_keep_size = 2MB: the checkpoint invalidates the slot.
    await q(primary, "insert into t select g, repeat('x', 300) from generate_series(2, 20001) g");
    const [{ seg }] = await q<{ seg: string }>(primary, 'select pg_walfile_name(pg_switch_wal()) as seg');
    await q(primary, 'checkpoint');
    await until(async () => (await primary.slots()).some((s) => s.name === 'beta' && s.walStatus === 'lost'), 20_000, 'slot invalidated');
    await until(async () => ((await q<{ w: string | null }>(primary, 'select last_archived_wal as w from pg_stat_archiver'))[0].w ?? '') >= seg, 30_000, `segment ${seg} archived`);

    const shipper = new ArchiveShipper({ archiveDir: join(fx.root, 'alpha', 'archive'), transport: clientA, peerUrl: () => betaUrl });
    const shipped = await shipper.shipOnce();
    expect(shipped.error).toBeUndefined();
    expect(shipped.pushed).toContain(seg);
    const again = await shipper.shipOnce();
    expect(again.pushed).toEqual([]);
    const sent = await readFile(join(fx.root, 'alpha', 'archive', seg));
    expect((await readFile(join(fx.root, 'beta', 'archive', seg))).equals(sent)).toBe(true);

    // Nothing new archived: passes do not ask the standby again until recheckMs has passed; then a file
    // the standby lost meanwhile is sent again.
    let t = 0;
    const { transport: countingTransport, questions } = counting();
    const idle = new ArchiveShipper({ archiveDir: join(fx.root, 'alpha', 'archive'), transport: countingTransport, peerUrl: () => betaUrl, now: () => t, recheckMs: 30_000 });
    expect((await idle.shipOnce()).pushed).toEqual([]);
    expect(questions()).toBe(1);
    await rm(join(fx.root, 'beta', 'archive', seg));
    t = 29_999;
    expect(await idle.shipOnce()).toEqual({ pushed: [], bytes: 0, pending: 0 });
    expect(questions()).toBe(1);
    t = 30_000;
    expect((await idle.shipOnce()).pushed).toEqual([seg]);
    expect(questions()).toBe(2);
    expect((await readFile(join(fx.root, 'beta', 'archive', seg))).equals(sent)).toBe(true);

    await standby.start();
    // The primary no longer has the WAL the standby needs: it must come from the shipped archive.
    await until(async () => (await q<{ n: string }>(standby, 'select count(*) as n from t'))[0].n === '20001', 60_000, 'standby replayed the archive');
    const log = await readFile(join(standby.dataDir, 'log', 'server.log'), 'utf8');
    expect(log).toMatch(/restored log file "[0-9A-F]{24}" from archive/);

    // The primary drops and recreates a slot whose WAL is gone (when the checkpoint really invalidated it).
    expect((await primary.repairSlots()).filter((n) => n !== 'beta')).toEqual([]);
    await standby.waitStreaming(60_000);
    await q(primary, "insert into t values (30000, 'after repair')");
    await until(async () => (await q(standby, 'select 1 from t where id = 30000')).length === 1, 20_000, 'streaming resumed');
  });

  it('the running shipper does not ask the standby while nothing is archived, and ships a new file at once', async () => {
    const { transport: countingTransport, questions } = counting();
    // A directory only this test writes to: the running primary archives into its own archive
    // directory on its own (archive_timeout, checkpoints), which is a real change the shipper must ship.
    const archive = join(fx.root, 'alpha', 'archive-quiet');
    await mkdir(archive, { recursive: true });
    const shipper = new ArchiveShipper({ archiveDir: archive, transport: countingTransport, peerUrl: () => betaUrl, recheckMs: 60_000 });
    // A backup history file: shipped like any archive file, never replayed.
    const name = '000000010000000000000003.00000028.backup';
    let passes = 0;
    const pass = shipper.shipOnce.bind(shipper);
    shipper.shipOnce = () => (passes++, pass());
    try {
      shipper.start(50);
      await until(async () => questions() >= 1, 10_000, 'a first pass');
      const after = passes;
      await new Promise((r) => setTimeout(r, 500));
      expect(questions()).toBe(1); // no question: nothing was written
      // Not even a pass: the loop sleeps until the recheck is due or the directory changes (it used
      // to wake every interval, ten times here, to find nothing to do).
      expect(passes - after).toBeLessThanOrEqual(1);
      await writeFile(join(archive, name), 'START WAL LOCATION: 0/3000028\n');
      await until(async () => (await readdir(join(fx.root, 'beta', 'archive'))).includes(name), 5_000, 'the new file on the standby');
      expect(questions()).toBe(2);
    } finally {
      await shipper.stop();
      await rm(join(archive, name), { force: true });
      await rm(join(fx.root, 'beta', 'archive', name), { force: true });
    }
  });

  it('a quiet running shipper still asks the standby once the recheck is due', async () => {
    const { transport: countingTransport, questions } = counting();
    const shipper = new ArchiveShipper({ archiveDir: join(fx.root, 'alpha', 'archive'), transport: countingTransport, peerUrl: () => betaUrl, recheckMs: 300 });
    try {
      shipper.start(50);
      await until(async () => questions() >= 1, 10_000, 'a first pass');
      await until(async () => questions() >= 3, 5_000, 'two rechecks without any write');
    } finally {
      await shipper.stop();
    }
  });
});
