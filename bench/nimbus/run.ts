/**
 * bench:nimbus — the nimbus-state data path on loopback with real Derby and sqlite: a Nimbus-shaped
 * primary home whose WorkspacePersistenceDB holds a BULK table of about BENCH_NIMBUS_MB MB, a JVM
 * updating random rows of it so that about BENCH_NIMBUS_CHURN_PCT % of its pages change per interval,
 * and a Cumulus-like writer committing 200-row transactions into authz.db. The primary ships every
 * BENCH_NIMBUS_INTERVAL_MS (the default interval, 1000 ms) for BENCH_NIMBUS_SECONDS; reported per round:
 *  - Derby freeze pause (the JVM stopped) p50/p99;
 *  - recovery point: copy point → verified install on the standby, p50/p99; and the standby's worst
 *    staleness (age of its newest installed copy just before the next install), p50/p99;
 *  - bytes shipped per round; authz.db online-backup time (the service pauses 0 ms).
 * Prints a table, then one JSON object (last line).
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import type { Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import express from 'express';
import { DerbyTool } from '../../adapters/nimbus/derby-tool.js';
import { SqliteTool } from '../../adapters/nimbus/sqlite.js';
import { NimbusStateAdapter } from '../../adapters/nimbus/state-engine.js';
import { NIMBUS_PATHS, writeRealNimbusHome } from '../../fixtures/nimbus-home/home.js';
import { startAuthzWriter } from '../../fixtures/nimbus-home/writers.js';
import { captureRawBody, requirePeerAuth } from '../../src/peer/auth.js';
import { PeerClient } from '../../src/peer/client.js';
import { nimbusStateConfigSchema } from '../../src/replication/nimbus-state/config.js';
import { NimbusStateDataPath } from '../../src/replication/nimbus-state/data-path.js';
import { percentile, table } from '../lib/report.js';
import { spawn } from 'node:child_process';
import { walkFiles } from '../../src/replication/nimbus-state/tree.js';

const MB = Number(process.env.BENCH_NIMBUS_MB ?? 200);
const CHURN_PCT = Number(process.env.BENCH_NIMBUS_CHURN_PCT ?? 1);
const INTERVAL_MS = Number(process.env.BENCH_NIMBUS_INTERVAL_MS ?? 1000);
const SECONDS = Number(process.env.BENCH_NIMBUS_SECONDS ?? 60);
/** nimbusState.derby[].tableCheckEveryMs on the standby (default: the config's 5 min). */
const TABLE_CHECK_MS = process.env.BENCH_NIMBUS_TABLE_CHECK_MS === undefined ? undefined : Number(process.env.BENCH_NIMBUS_TABLE_CHECK_MS);
const SECRET = 'bench-nimbus-secret-0123456789abcdef0123';
/** On-disk bytes per BULK row (1000-character payload, page and index overhead), measured. */
const ROW_BYTES = 1450;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function duBytes(dir: string): Promise<number> {
  let n = 0;
  for (const e of await walkFiles(dir)) n += e.size;
  return n;
}

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'nha-bench-nimbus-'));
  const derby = new DerbyTool();
  const sqlite = new SqliteTool();
  const homeA = join(dir, 'a', 'nimbus');
  const homeB = join(dir, 'b', 'nimbus');
  const stop: (() => Promise<void>)[] = [];
  try {
    const f = await writeRealNimbusHome(homeA, { derby, sqlite, images: 2 });
    await writeRealNimbusHome(homeB, { derby, sqlite, images: 0 });
    // BULK: one row, then doubled until the table is about MB megabytes.
    const rows = Math.max(2, 2 ** Math.round(Math.log2((MB * 1e6) / ROW_BYTES)));
    const stmts = ['CREATE TABLE BULK (SEQ BIGINT NOT NULL PRIMARY KEY, PAYLOAD VARCHAR(1000))', `INSERT INTO BULK VALUES (1, '${'b'.repeat(1000)}')`];
    for (let k = 1; k < rows; k *= 2) stmts.push(`INSERT INTO BULK SELECT SEQ + ${k}, PAYLOAD FROM BULK`);
    const persistence = join(homeA, NIMBUS_PATHS.persistenceDb);
    const t0 = performance.now();
    // One JVM per doubling: each stays within the tool's per-script timeout.
    for (let i = 0; i < stmts.length; i += i < 2 ? 2 : 1) {
      const script = join(dir, `bulk-${i}.sql`);
      await writeFile(script, stmts.slice(i, i < 2 ? 2 : i + 1).join('\n;\n') + '\n;\n');
      await derby.script(persistence, script);
    }
    const dbBytes = await duBytes(join(homeA, NIMBUS_PATHS.derbyUnit));
    console.error(`[bench:nimbus] Derby unit ${(dbBytes / 1e6).toFixed(0)} MB (${rows} BULK rows) built in ${((performance.now() - t0) / 1000).toFixed(1)} s`);

    // Churn: about CHURN_PCT % of the table's pages per interval, 50 random rows per transaction.
    const pageBytes = 4096;
    const pagesPerInterval = Math.max(1, Math.round(((CHURN_PCT / 100) * dbBytes) / pageBytes));
    const rowsPerTxn = 50;
    const txnsPerInterval = Math.max(1, Math.round(pagesPerInterval / rowsPerTxn));
    const pauseMs = Math.max(1, Math.floor(INTERVAL_MS / txnsPerInterval));
    const c = await derby.command(['churn', String(pauseMs), String(rowsPerTxn), String(rows), persistence, 'BULK']);
    const churn = spawn(c.cmd, c.args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let commits = 0;
    churn.stdout.on('data', (d: Buffer) => (commits += (d.toString().match(/committed/g) ?? []).length));
    let churnErr = '';
    churn.stderr.on('data', (d: Buffer) => (churnErr = (churnErr + d.toString()).slice(-2000)));
    const churnExit = new Promise((r) => churn.once('exit', r));
    stop.push(async () => {
      if (churn.exitCode === null) churn.kill('SIGKILL');
      await churnExit;
    });
    for (let i = 0; commits === 0; i++) {
      if (i > 600 || churn.exitCode !== null) throw new Error(`churn JVM did not start: ${churnErr}`);
      await sleep(100);
    }
    const sw = startAuthzWriter(homeA, f.canonicalId, { rows: 200, filesPerTxn: 5, pauseMs: 200 });
    stop.push(() => sw.kill());

    const cfg = (home: string) => nimbusStateConfigSchema.parse({ home, intervalMs: INTERVAL_MS, derby: [{ name: 'derby', ...(TABLE_CHECK_MS === undefined ? {} : { tableCheckEveryMs: TABLE_CHECK_MS }) }], sqlite: [{ name: 'authz' }] });
    const tB = new PeerClient('b', SECRET);
    const tA = new PeerClient('a', SECRET);
    stop.push(async () => {
      tA.close();
      tB.close();
    });
    const standby = new NimbusStateDataPath({ config: cfg(homeB), stagingDir: join(dir, 'b', 'staging'), engine: new NimbusStateAdapter(derby, sqlite), transport: tB, events: { emit: () => undefined }, isStandby: () => true });
    await standby.start();
    stop.push(() => standby.close());
    const app = express();
    app.use('/peer/nimbus-state', express.json({ verify: captureRawBody, limit: '64mb' }), requirePeerAuth(SECRET, { allowStream: true }), standby.router);
    const server: Server = await new Promise((resolve) => {
      const s = app.listen(0, '127.0.0.1', () => resolve(s));
    });
    stop.push(() => new Promise<void>((r) => server.close(() => r())));
    const addr = server.address();
    const url = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`;
    // Where a round's time goes: the local frozen copy, and the standby's boot-and-check (from its ack).
    const copyMs: number[] = [];
    const engineA = new NimbusStateAdapter(derby, sqlite, async () => (churn.exitCode === null ? churn.pid! : null));
    const timedEngine = Object.assign(Object.create(engineA) as NimbusStateAdapter, {
      derbyCopy: async (o: Parameters<NimbusStateAdapter['derbyCopy']>[0]) => {
        const t = performance.now();
        try {
          return await engineA.derbyCopy(o);
        } finally {
          copyMs.push(performance.now() - t);
        }
      },
    });
    // The bench drives the rounds (one every interval after the previous ended, as the data path's loop does).
    const primary = new NimbusStateDataPath({
      config: { ...cfg(homeA), intervalMs: 3_600_000 },
      stagingDir: join(dir, 'a', 'staging'),
      engine: timedEngine,
      transport: tA,
      events: { emit: () => undefined },
      isStandby: () => false,
    });
    stop.push(() => primary.close());
    primary.startShipping(url);
    // The first round ships the whole database; the measurement starts after it.
    // (retried like the loop would: the first frozen pass may exceed maxPauseMs while the fresh copy is written back)
    const tFirst = performance.now();
    let firstOk = false;
    let firstAttempts = 0;
    while (!firstOk && firstAttempts < 10) {
      firstAttempts++;
      firstOk = await primary.runRound();
      if (!firstOk) await sleep(INTERVAL_MS);
    }
    const firstMs = performance.now() - tFirst;
    const firstError = primary.sender.items.get('derby')!.lastError;
    const firstBytes = primary.sender.items.get('derby')!.bytesShipped;
    // The first delta carries everything that changed during the whole first round (8-18 s of churn):
    // a start-up transient, reported apart from the steady state measured below.
    await sleep(INTERVAL_MS);
    await primary.runRound();
    const warm = primary.sender.items.get('derby')!;
    const warmDelta = { rpMs: warm.lastAck ? warm.lastAck.ackedAt - warm.lastAck.takenAt : null, bytes: warm.lastUnit?.deltaBytes ?? null };
    const d = primary.sender.items.get('derby')!;
    const a = primary.sender.items.get('authz')!;
    const pauses0 = d.pausesMs.length;
    const abandoned0 = d.abandonedFreezes;
    const rp0 = d.recoveryPointsMs.length;
    const bk0 = a.backupMs.length;
    /** The rest of a round after the Derby unit was acknowledged: the authz.db item. */
    const authzMs: number[] = [];
    const rounds: { patchMs: number | null; syncMs: number | null; tableCheck: boolean | null; records: number; fallbacks: number; verifyMs: number | null; ok: boolean; ms: number; bytes: number; files: number; rpMs: number | null; takenAt: number | null; ackedAt: number | null; error: string | null }[] = [];
    const tEnd = performance.now() + SECONDS * 1000;
    while (performance.now() < tEnd) {
      await sleep(INTERVAL_MS);
      const b0 = d.bytesShipped;
      const f0 = d.filesShipped;
      const ack0 = d.lastAck?.snapshotId;
      const fb0 = d.fallbacks;
      const t = performance.now();
      const ok = await primary.runRound();
      const fresh = d.lastAck && d.lastAck.snapshotId !== ack0 ? d.lastAck : null;
      if (fresh) authzMs.push(Date.now() - fresh.ackedAt);
      if (fresh && process.env.BENCH_NIMBUS_TRACE) console.error(`[bench:nimbus] rp ${fresh.ackedAt - fresh.takenAt} ms, unit ${JSON.stringify(d.lastUnit)}`);
      rounds.push({ patchMs: fresh ? (d.lastUnit?.patchMs ?? null) : null, syncMs: fresh ? (d.lastUnit?.syncMs ?? null) : null, tableCheck: fresh ? (d.lastUnit?.tableCheck ?? null) : null, records: fresh ? (d.lastUnit?.records ?? 0) : 0, fallbacks: d.fallbacks - fb0, verifyMs: fresh?.verifyMs ?? null, ok, ms: performance.now() - t, bytes: d.bytesShipped - b0, files: d.filesShipped - f0, rpMs: fresh ? fresh.ackedAt - fresh.takenAt : null, takenAt: fresh?.takenAt ?? null, ackedAt: fresh?.ackedAt ?? null, error: d.lastError });
    }
    // Staleness: just before install i+1 the standby's newest copy dates from copy point i.
    const installs = rounds.filter((r) => r.takenAt !== null);
    const stale: number[] = [];
    for (let i = 1; i < installs.length; i++) stale.push(installs[i].ackedAt! - installs[i - 1].takenAt!);
    const pauses = d.pausesMs.slice(pauses0);
    const rps = d.recoveryPointsMs.slice(rp0);
    const bytes = rounds.map((r) => r.bytes);
    const r1 = (v: number | null) => (v === null ? null : Math.round(v * 10) / 10);
    const r0 = (v: number | null) => (v === null ? null : Math.round(v));
    const result = {
      config: { dbMB: Math.round(dbBytes / 1e6), churnPct: CHURN_PCT, pagesPerInterval, intervalMs: INTERVAL_MS, seconds: SECONDS },
      firstRound: { ok: firstOk, attempts: firstAttempts, ms: Math.round(firstMs), bytes: firstBytes, error: firstError },
      firstDelta: warmDelta,
      rounds: rounds.length,
      failedRounds: rounds.filter((r) => !r.ok).length,
      errors: [...new Set(rounds.map((r) => r.error).filter((e) => e))].slice(0, 5),
      derby: {
        pauseMs: { p50: r1(percentile(pauses, 50)), p99: r1(percentile(pauses, 99)), max: r1(pauses.length ? Math.max(...pauses) : null), n: pauses.length, abandoned: d.abandonedFreezes - abandoned0 },
        recoveryPointMs: { p50: r0(percentile(rps, 50)), p99: r0(percentile(rps, 99)), n: rps.length },
        stalenessMs: { p50: r0(percentile(stale, 50)), p99: r0(percentile(stale, 99)), n: stale.length },
        localCopyMs: { p50: r0(percentile(copyMs.slice(1), 50)), p99: r0(percentile(copyMs.slice(1), 99)) },
        standbyVerifyMs: { p50: r0(percentile(rounds.flatMap((r) => (r.verifyMs === null ? [] : [r.verifyMs])), 50)), p99: r0(percentile(rounds.flatMap((r) => (r.verifyMs === null ? [] : [r.verifyMs])), 99)) },
        roundMs: { p50: r0(percentile(rounds.map((r) => r.ms), 50)), p99: r0(percentile(rounds.map((r) => r.ms), 99)) },
        bytesPerRound: { p50: r0(percentile(bytes, 50)), p99: r0(percentile(bytes, 99)), mean: Math.round(bytes.reduce((x, y) => x + y, 0) / Math.max(1, bytes.length)) },
        filesPerRound: { p50: r0(percentile(rounds.map((r) => r.files), 50)) },
        churnCommits: commits,
        tableCheckRounds: rounds.filter((r) => r.tableCheck).length,
        fallbackRounds: rounds.filter((r) => r.fallbacks > 0).length,
        standbyPatchMs: { p50: r0(percentile(rounds.flatMap((r) => (r.patchMs === null ? [] : [r.patchMs])), 50)), p99: r0(percentile(rounds.flatMap((r) => (r.patchMs === null ? [] : [r.patchMs])), 99)) },
        standbyBootDirSyncMs: { p50: r0(percentile(rounds.flatMap((r) => (r.syncMs === null ? [] : [r.syncMs])), 50)), p99: r0(percentile(rounds.flatMap((r) => (r.syncMs === null ? [] : [r.syncMs])), 99)) },
        recordsPerRound: { p50: r0(percentile(rounds.filter((r) => r.verifyMs !== null).map((r) => r.records), 50)) },
      },
      authz: { itemMs: { p50: r0(percentile(authzMs, 50)), p99: r0(percentile(authzMs, 99)) }, backupMs: { p50: r1(percentile(a.backupMs.slice(bk0), 50)), p99: r1(percentile(a.backupMs.slice(bk0), 99)) }, servicePauseMs: 0 },
      targets: { pauseP99Ms: 200, recoveryPointP99Ms: 2000 },
    };
    const fmt = (v: number | null) => (v === null || !Number.isFinite(v) ? '—' : String(v));
    console.log(
      table([
        { metric: 'Derby freeze pause, every freeze (ms)', p50: fmt(result.derby.pauseMs.p50), p99: fmt(result.derby.pauseMs.p99), target: '≤ 200 (p99)' },
        { metric: 'recovery point: copy → verified install (ms)', p50: fmt(result.derby.recoveryPointMs.p50), p99: fmt(result.derby.recoveryPointMs.p99), target: '≤ 2000 (p99)' },
        { metric: 'standby staleness before next install (ms)', p50: fmt(result.derby.stalenessMs.p50), p99: fmt(result.derby.stalenessMs.p99), target: '' },
        { metric: 'local frozen copy incl. unpaused passes (ms)', p50: fmt(result.derby.localCopyMs.p50), p99: fmt(result.derby.localCopyMs.p99), target: '' },
        { metric: 'standby boot (table check every tableCheckEveryMs) (ms)', p50: fmt(result.derby.standbyVerifyMs.p50), p99: fmt(result.derby.standbyVerifyMs.p99), target: '' },
        { metric: 'standby: patch mirror / level boot dir (ms, p50 and p99 of each)', p50: `${fmt(result.derby.standbyPatchMs.p50)} / ${fmt(result.derby.standbyBootDirSyncMs.p50)}`, p99: `${fmt(result.derby.standbyPatchMs.p99)} / ${fmt(result.derby.standbyBootDirSyncMs.p99)}`, target: '' },
        { metric: 'authz.db item, after the Derby ack (ms)', p50: fmt(result.authz.itemMs.p50), p99: fmt(result.authz.itemMs.p99), target: '' },
        { metric: 'round (ms)', p50: fmt(result.derby.roundMs.p50), p99: fmt(result.derby.roundMs.p99), target: '' },
        { metric: 'Derby bytes shipped per round', p50: fmt(result.derby.bytesPerRound.p50), p99: fmt(result.derby.bytesPerRound.p99), target: '' },
        { metric: 'authz.db online backup (ms; service pause 0)', p50: fmt(result.authz.backupMs.p50), p99: fmt(result.authz.backupMs.p99), target: 'pause 0' },
      ]),
    );
    console.log(JSON.stringify(result));
  } finally {
    for (const s of stop.reverse()) await s().catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
