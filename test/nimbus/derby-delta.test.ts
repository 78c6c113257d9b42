/**
 * Page-granular Derby deltas between two sidecar endpoints over the real peer transport, with a JVM
 * committing into both databases while rounds run: after the first (whole) unit only changed blocks
 * are shipped; every installed standby copy boots, passes SYSCS_CHECK_TABLE and holds every row
 * committed before its copy point; a garbled or missing delta, a standby mirror at another base and a
 * patch cut off midway fall back to whole files in the same round; a transfer cut midway leaves the
 * last verified copy installed.
 */
import { existsSync } from 'node:fs';
import { cp, readFile, rm, writeFile, open } from 'node:fs/promises';
import type { Server } from 'node:http';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import express from 'express';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DerbyTool } from '../../adapters/nimbus/derby-tool.js';
import { SqliteTool } from '../../adapters/nimbus/sqlite.js';
import { NimbusStateAdapter } from '../../adapters/nimbus/state-engine.js';
import { NIMBUS_PATHS, writeRealNimbusHome } from '../../fixtures/nimbus-home/home.js';
import { startDerbyWriter, type RunningWriter } from '../../fixtures/nimbus-home/writers.js';
import { captureRawBody, requirePeerAuth } from '../../src/peer/auth.js';
import { PeerClient } from '../../src/peer/client.js';
import { nimbusStateConfigSchema } from '../../src/replication/nimbus-state/config.js';
import { NimbusStateDataPath } from '../../src/replication/nimbus-state/data-path.js';
import type { MirrorRecord } from '../../src/replication/nimbus-state/derby-mirror.js';
import { walkFiles } from '../../src/replication/nimbus-state/tree.js';
import { derbyMissing, skipMessage, tempDir } from './helpers.js';

const missing = derbyMissing();
skipMessage(missing);

const SECRET = 'nimbus-delta-test-secret-0123456789abcdef';
const events = { emit: () => undefined };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** What the test does to the next delta upload. */
type Fault = 'none' | 'garble' | 'drop' | 'cut';

describe.skipIf(missing !== null)('nimbus state: page-granular Derby deltas', () => {
  const dir = tempDir('delta');
  const homeA = join(dir, 'a', 'nimbus');
  const homeB = join(dir, 'b', 'nimbus');
  const stagingB = join(dir, 'b', 'staging');
  const derby = new DerbyTool();
  const sqlite = new SqliteTool();
  let server: Server;
  let primary: NimbusStateDataPath;
  let standby: NimbusStateDataPath;
  let dw: RunningWriter;
  const transports: PeerClient[] = [];
  let fault: Fault = 'none';

  const cfg = (home: string) =>
    nimbusStateConfigSchema.parse({ home, intervalMs: 3_600_000, derby: [{ name: 'derby', maxPauseMs: 2000, boundMs: 60_000, tableCheckEveryMs: 3_600_000 }] });
  const derbyStatus = () => primary.sender.items.get('derby')!;

  beforeAll(async () => {
    await writeRealNimbusHome(homeA, { derby, sqlite, images: 0 });
    await writeRealNimbusHome(homeB, { derby, sqlite, images: 0 });
    // A table of about 12 MB the writer never touches: a unit worth shipping in deltas.
    const bulk = [`CREATE TABLE BULK (SEQ BIGINT NOT NULL PRIMARY KEY, PAYLOAD VARCHAR(1000))`, `INSERT INTO BULK VALUES (1, '${'b'.repeat(1000)}')`];
    for (let k = 1; k < 8192; k *= 2) bulk.push(`INSERT INTO BULK SELECT SEQ + ${k}, PAYLOAD FROM BULK`);
    await writeFile(join(dir, 'bulk.sql'), bulk.join('\n;\n') + '\n;\n');
    await derby.script(join(homeA, NIMBUS_PATHS.persistenceDb), join(dir, 'bulk.sql'));
    const tB = new PeerClient('b', SECRET);
    const tA = new PeerClient('a', SECRET);
    transports.push(tA, tB);
    // The primary's transport with a fault injector on the delta upload.
    const faulty = Object.create(tA) as PeerClient;
    faulty.putStream = async <T,>(baseUrl: string, path: string, body: Readable, size: number, timeoutMs: number): Promise<T> => {
      const isDelta = path.includes('area=delta');
      const f = isDelta ? fault : 'none';
      if (isDelta) fault = 'none';
      if (f === 'drop') {
        body.destroy();
        return { bytes: size } as T;
      }
      if (f === 'cut') {
        // The sender dies halfway through the upload: the standby sees a stream that ends short.
        const half: Buffer[] = [];
        let n = 0;
        for await (const c of body) {
          half.push(c as Buffer);
          n += (c as Buffer).length;
          if (n >= size / 2) break;
        }
        const cutStream = new Readable({ read() {} });
        cutStream.push(Buffer.concat(half).subarray(0, Math.floor(size / 2)));
        setTimeout(() => cutStream.destroy(new Error('sender killed')), 20);
        return tA.putStream<T>(baseUrl, path, cutStream, size, timeoutMs);
      }
      const r = await tA.putStream<T>(baseUrl, path, body, size, timeoutMs);
      if (f === 'garble') {
        // Garbled at rest on the standby after a good upload: the commit must notice.
        const q = new URLSearchParams(path.slice(path.indexOf('?') + 1));
        const fh = await open(join(stagingB, 'derby', 'incoming', q.get('path')!), 'r+');
        const b = Buffer.alloc(1);
        await fh.read(b, 0, 1, 100);
        b[0] ^= 0xff;
        await fh.write(b, 0, 1, 100);
        await fh.close();
      }
      return r;
    };
    standby = new NimbusStateDataPath({ config: cfg(homeB), stagingDir: stagingB, engine: new NimbusStateAdapter(derby, sqlite), transport: tB, events, isStandby: () => true });
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
      transport: faulty,
      events,
      isStandby: () => false,
    });
    const app = express();
    // Through the variable: the tests replace the standby (a restart) behind the same address.
    app.use('/peer/nimbus-state', express.json({ verify: captureRawBody, limit: '64mb' }), requirePeerAuth(SECRET, { allowStream: true }), (req, res, next) => standby.router(req, res, next));
    server = await new Promise((resolve) => {
      const s = app.listen(0, '127.0.0.1', () => resolve(s));
    });
    const addr = server.address();
    dw = await startDerbyWriter(derby, [
      [join(homeA, NIMBUS_PATHS.persistenceDb), ['RESOURCES', 'VMS']],
      [join(homeA, NIMBUS_PATHS.accountingDb), ['DEPLOYMENTS']],
    ], { pauseMs: 2 });
    writerPid = dw.pid;
    primary.startShipping(`http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`);
  });

  afterAll(async () => {
    await dw?.kill();
    await primary?.close();
    await standby?.close();
    for (const t of transports) t.close();
    await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
    await rm(dir, { recursive: true, force: true });
  });

  /** The installed copy (checked on a copy of it, so the next round's bookkeeping sees it untouched). */
  async function checkInstalled(label: string): Promise<void> {
    const ack = derbyStatus().lastAck!;
    expect(ack, label).not.toBeNull();
    const probe = join(dir, 'probe');
    await rm(probe, { recursive: true, force: true });
    await cp(join(homeB, NIMBUS_PATHS.derbyUnit), probe, { recursive: true });
    try {
      const check = await derby.check([join(probe, 'WorkspacePersistenceDB'), join(probe, 'WorkspaceAccountingDB')]);
      expect(check.error, label).toBeUndefined();
      expect(check.ok, label).toBe(true);
      const [p, a] = check.databases!;
      expect(p.tablesChecked, label).toBeGreaterThan(0);
      const mustHold = dw.ackedBefore(ack.takenAt);
      expect(mustHold, label).toBeGreaterThan(0);
      expect(p.rows['APP.RESOURCES'], label).toBeGreaterThanOrEqual(mustHold);
      expect(p.rows['APP.VMS'], label).toBe(p.rows['APP.RESOURCES']);
      expect([p.rows['APP.RESOURCES'], p.rows['APP.RESOURCES'] - 1], label).toContain(a.rows['APP.DEPLOYMENTS']);
    } finally {
      await rm(probe, { recursive: true, force: true });
    }
  }

  async function round(label: string): Promise<void> {
    await sleep(300);
    const ok = await primary.runRound();
    expect(ok, `${label}: ${JSON.stringify(primary.status())}`).toBe(true);
    await checkInstalled(label);
  }

  it('after the first unit only changed blocks are shipped, and every installed copy is whole', async () => {
    await round('first unit');
    expect(derbyStatus().lastUnit!.whole).toBeGreaterThan(0);
    const unitBytes = (await walkFiles(join(homeA, NIMBUS_PATHS.derbyUnit))).reduce((n, e) => n + e.size, 0);
    for (let i = 1; i <= 4; i++) {
      const b0 = derbyStatus().bytesShipped;
      await round(`delta round ${i}`);
      const u = derbyStatus().lastUnit!;
      // Only files that appeared since (a new Derby log file) go whole.
      expect(u.whole - u.wholeNew, `round ${i}: ${JSON.stringify(u)}`).toBe(0);
      expect(u.delta).toBeGreaterThan(0);
      expect(u.records).toBeGreaterThan(0);
      expect(u.tableCheck).toBe(false);
      // The delta is the changed blocks, not the files: a round ships far less than the unit holds.
      expect(u.deltaBytes).toBeLessThan(unitBytes / 4);
      if (u.whole === 0) expect(derbyStatus().bytesShipped - b0).toBe(u.deltaBytes);
    }
    expect(derbyStatus().fallbacks).toBe(0);
  }, 240_000);

  it.each([
    { fault: 'garble' as const, name: 'a delta garbled on the standby' },
    { fault: 'drop' as const, name: 'a delta that never arrived' },
  ])('$name falls back to whole files in the same round', async ({ fault: f }) => {
    const fb0 = derbyStatus().fallbacks;
    fault = f;
    await round(f);
    expect(derbyStatus().fallbacks).toBe(fb0 + 1);
    expect(derbyStatus().lastUnit!.whole - derbyStatus().lastUnit!.wholeNew).toBeGreaterThan(0);
    await round(`${f}, next round`);
    expect(derbyStatus().lastUnit!.whole - derbyStatus().lastUnit!.wholeNew).toBe(0);
    expect(derbyStatus().lastUnit!.delta).toBeGreaterThan(0);
  }, 120_000);

  it('a standby mirror at another base (restored from an earlier unit) gets whole files', async () => {
    const mirror = join(stagingB, 'derby', 'mirror');
    const saved = join(dir, 'saved-mirror');
    await cp(mirror, saved, { recursive: true });
    const savedRecord = await readFile(join(stagingB, 'derby', 'mirror.json'), 'utf8');
    await round('moving on');
    await round('moving on again');
    await rm(mirror, { recursive: true, force: true });
    await cp(saved, mirror, { recursive: true });
    await writeFile(join(stagingB, 'derby', 'mirror.json'), savedRecord);
    // The receiver reads its record once: a new one, as after a restart.
    await standby.close();
    standby = new NimbusStateDataPath({ config: cfg(homeB), stagingDir: stagingB, engine: new NimbusStateAdapter(derby, sqlite), transport: transports[1], events, isStandby: () => true });
    await standby.start();
    const fb0 = derbyStatus().fallbacks;
    await round('old base');
    expect(derbyStatus().fallbacks).toBe(fb0 + 1);
    expect(derbyStatus().lastUnit!.whole - derbyStatus().lastUnit!.wholeNew).toBeGreaterThan(0);
  }, 120_000);

  it('a patch cut off midway (record left patching, a mirror block garbled) gets whole files', async () => {
    const recPath = join(stagingB, 'derby', 'mirror.json');
    const rec = JSON.parse(await readFile(recPath, 'utf8')) as MirrorRecord;
    const big = Object.entries(rec.files).sort((x, y) => y[1].size - x[1].size)[0][0];
    const fh = await open(join(stagingB, 'derby', 'mirror', big), 'r+');
    await fh.write(Buffer.alloc(4096, 0xee), 0, 4096, 0);
    await fh.close();
    await writeFile(recPath, JSON.stringify({ ...rec, state: 'patching' }));
    await standby.close();
    standby = new NimbusStateDataPath({ config: cfg(homeB), stagingDir: stagingB, engine: new NimbusStateAdapter(derby, sqlite), transport: transports[1], events, isStandby: () => true });
    await standby.start();
    const fb0 = derbyStatus().fallbacks;
    await round('after a cut-off patch');
    expect(derbyStatus().fallbacks).toBe(fb0 + 1);
    await round('delta again');
    expect(derbyStatus().lastUnit!.whole - derbyStatus().lastUnit!.wholeNew).toBe(0);
    expect(derbyStatus().lastUnit!.delta).toBeGreaterThan(0);
  }, 120_000);

  it('a transfer cut midway leaves the last verified copy installed; the next round installs', async () => {
    await round('before the cut');
    const before = JSON.parse(await readFile(join(stagingB, 'derby', 'installed.json'), 'utf8')) as { snapshotId: string };
    await sleep(300);
    fault = 'cut';
    expect(await primary.runRound()).toBe(false);
    const after = JSON.parse(await readFile(join(stagingB, 'derby', 'installed.json'), 'utf8')) as { snapshotId: string };
    expect(after.snapshotId).toBe(before.snapshotId);
    expect(existsSync(join(homeB, NIMBUS_PATHS.persistenceDb, 'service.properties'))).toBe(true);
    // Still the copy of the last acknowledged copy point, whole.
    await checkInstalled('after the cut');
    await round('after the cut, next round');
  }, 120_000);
});
