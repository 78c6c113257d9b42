/**
 * The nimbus-state data path between two sidecar endpoints over the real peer transport: a primary home
 * with a JVM committing into both Derby databases and a Cumulus-like writer committing 200-row
 * transactions into authz.db (files first), a standby home under another root. After every round the
 * standby's installed copies boot / pass integrity_check and hold every transaction acknowledged before
 * the copy point; kill -9 of the writers changes nothing of that; every indexed object is readable on the
 * standby at its (rewritten) data_key and matches its .meta MD5.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import type { Server } from 'node:http';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import express from 'express';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DerbyTool } from '../../adapters/nimbus/derby-tool.js';
import { SqliteTool } from '../../adapters/nimbus/sqlite.js';
import { NimbusStateAdapter } from '../../adapters/nimbus/state-engine.js';
import { NIMBUS_PATHS, writeRealNimbusHome } from '../../fixtures/nimbus-home/home.js';
import { startAuthzWriter, startDerbyWriter, type RunningWriter } from '../../fixtures/nimbus-home/writers.js';
import { captureRawBody, requirePeerAuth } from '../../src/peer/auth.js';
import { PeerClient } from '../../src/peer/client.js';
import { nimbusStateConfigSchema } from '../../src/replication/nimbus-state/config.js';
import { NimbusStateDataPath } from '../../src/replication/nimbus-state/data-path.js';
import { derbyMissing, skipMessage, sqliteMissing, tempDir } from './helpers.js';

const missing = derbyMissing() ?? sqliteMissing();
skipMessage(missing);

const SECRET = 'nimbus-state-test-secret-0123456789abcdef';
const events = { emit: () => undefined };

describe.skipIf(missing !== null)('nimbus state: Derby + authz.db + posixdata reach the standby consistently', () => {
  const dir = tempDir('state');
  const homeA = join(dir, 'a', 'nimbus');
  const homeB = join(dir, 'b', 'opt', 'nimbus-standby');
  const derby = new DerbyTool();
  const sqlite = new SqliteTool();
  let server: Server;
  let url = '';
  let primary: NimbusStateDataPath;
  let standby: NimbusStateDataPath;
  let dw: RunningWriter;
  let sw: RunningWriter;
  const transports: PeerClient[] = [];

  const cfg = (home: string) =>
    nimbusStateConfigSchema.parse({ home, intervalMs: 3_600_000, derby: [{ name: 'derby', maxPauseMs: 2000, boundMs: 60_000 }], sqlite: [{ name: 'authz', boundMs: 60_000 }] });

  beforeAll(async () => {
    const f = await writeRealNimbusHome(homeA, { derby, sqlite, images: 2 });
    await writeRealNimbusHome(homeB, { derby, sqlite, images: 0 });
    const tB = new PeerClient('b', SECRET);
    const tA = new PeerClient('a', SECRET);
    transports.push(tA, tB);
    standby = new NimbusStateDataPath({ config: cfg(homeB), stagingDir: join(dir, 'b', 'staging'), engine: new NimbusStateAdapter(derby, sqlite), transport: tB, events, isStandby: () => true });
    await standby.start();
    let writerPid = 0;
    primary = new NimbusStateDataPath({
      config: cfg(homeA),
      stagingDir: join(dir, 'a', 'staging'),
      engine: new NimbusStateAdapter(derby, sqlite, async () => {
        try {
          process.kill(writerPid, 0);
          return writerPid;
        } catch {
          return null;
        }
      }),
      transport: tA,
      events,
      isStandby: () => false,
    });
    const app = express();
    app.use('/peer/nimbus-state', express.json({ verify: captureRawBody, limit: '64mb' }), requirePeerAuth(SECRET, { allowStream: true }), standby.router);
    server = await new Promise((resolve) => {
      const s = app.listen(0, '127.0.0.1', () => resolve(s));
    });
    const addr = server.address();
    url = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`;
    dw = await startDerbyWriter(derby, [
      [join(homeA, NIMBUS_PATHS.persistenceDb), ['RESOURCES', 'VMS']],
      [join(homeA, NIMBUS_PATHS.accountingDb), ['DEPLOYMENTS']],
    ]);
    writerPid = dw.pid;
    sw = startAuthzWriter(homeA, f.canonicalId, { rows: 200, filesPerTxn: 5, pauseMs: 150 });
    // The primary's peer is the standby endpoint above; the interval is an hour: the test drives the rounds.
    primary.startShipping(url);
  });

  afterAll(async () => {
    await dw?.kill();
    await sw?.kill();
    await primary?.close();
    await standby?.close();
    for (const t of transports) t.close();
    await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
    await rm(dir, { recursive: true, force: true });
  });

  async function verifyStandby(round: string): Promise<void> {
    const st = primary.sender.items;
    const dAck = st.get('derby')!.lastAck!;
    const sAck = st.get('authz')!.lastAck!;
    expect(dAck, `derby acknowledged in ${round}`).not.toBeNull();
    expect(sAck, `authz acknowledged in ${round}`).not.toBeNull();
    // Derby: the installed unit boots, every table checks, every transaction acknowledged before the copy point is there.
    const check = await derby.check([join(homeB, NIMBUS_PATHS.persistenceDb), join(homeB, NIMBUS_PATHS.accountingDb)]);
    expect(check.error).toBeUndefined();
    const [p, a] = check.databases!;
    const mustHold = dw.ackedBefore(dAck.takenAt);
    expect(p.rows['APP.RESOURCES']).toBeGreaterThanOrEqual(mustHold);
    expect(p.rows['APP.VMS']).toBe(p.rows['APP.RESOURCES']);
    expect([p.rows['APP.RESOURCES'], p.rows['APP.RESOURCES'] - 1]).toContain(a.rows['APP.DEPLOYMENTS']);
    // authz.db: integrity, whole 200-row transactions, every acknowledged one.
    const db = join(homeB, NIMBUS_PATHS.authzDb);
    await sqlite.integrityCheck(db);
    const txns = JSON.parse(
      (await sqlite.run(db, [
        "SELECT CAST(substr(name, instr(name, '/w') + 2, instr(substr(name, instr(name, '/w') + 2), '-') - 1) AS INTEGER) AS txn, count(*) AS n FROM objects WHERE object_type = 1 AND name LIKE 'VMS/%/w%' GROUP BY txn ORDER BY txn;",
      ], { json: true })) || '[]',
    ) as { txn: number; n: number }[];
    for (const t of txns) expect(t.n, `transaction ${t.txn} complete`).toBe(200);
    const acked = sw.ackedBefore(sAck.takenAt);
    expect(txns.length).toBeGreaterThanOrEqual(acked);
    for (let k = 1; k <= acked; k++) expect(txns[k - 1]?.txn).toBe(k);
    // Every indexed object is on the standby under its own root, readable, and matches its .meta MD5.
    const rows = JSON.parse((await sqlite.run(db, ['SELECT data_key, md5sum FROM objects WHERE object_type = 1;'], { json: true })) || '[]') as { data_key: string; md5sum: string }[];
    expect(rows.length).toBeGreaterThan(0);
    for (const r of rows) {
      expect(r.data_key.startsWith(join(homeB, NIMBUS_PATHS.posixdata) + '/')).toBe(true);
      expect(existsSync(r.data_key)).toBe(true);
      const md5 = createHash('md5').update(readFileSync(r.data_key)).digest('hex');
      expect(md5).toBe(r.md5sum);
      expect(readFileSync(`${r.data_key}.meta`, 'utf8')).toBe(md5);
    }
  }

  it('ships verified copies while both writers commit, and after kill -9 of each', async () => {
    for (let round = 0; round < 2; round++) {
      await new Promise((r) => setTimeout(r, 500));
      const ok = await primary.runRound();
      expect(ok, JSON.stringify(primary.status())).toBe(true);
      await verifyStandby(`round ${round}`);
    }
    // Caught up right after a round; not once its copies are older than the bound (verification above is slow).
    expect(await primary.runRound()).toBe(true);
    expect(standby.caughtUp()).toBe(true);
    expect(primary.peerCaughtUp()).toBe(true);
    // kill -9 of the sqlite writer mid-transaction and of the Derby JVM: the next copies are still whole.
    await new Promise((r) => setTimeout(r, 150));
    await sw.kill();
    await dw.kill();
    const ok = await primary.runRound();
    expect(ok, JSON.stringify(primary.status())).toBe(true);
    await verifyStandby('after kill -9');
    expect(dw.acks.length).toBeGreaterThan(0);
    expect(sw.acks.length).toBeGreaterThan(0);
    const s = primary.status() as { items: Record<string, { pauseMsP99: number; recoveryPointMsP99: number; backupMsP99: number }> };
    console.log(`[state-path] derby pause p99 ${s.items.derby.pauseMsP99} ms, recovery point p99 ${s.items.derby.recoveryPointMsP99} ms; authz backup p99 ${s.items.authz.backupMsP99} ms, recovery point p99 ${s.items.authz.recoveryPointMsP99} ms`);
  }, 300_000);
});
