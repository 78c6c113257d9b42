/**
 * bench:db — PostgreSQL log shipping on two embedded clusters on loopback:
 *  1. replication lag at a steady commit rate (async): end-to-end (a marker row's commit ack on the
 *     primary until it is visible on the standby) and the primary's pg_stat_replication replay_lag;
 *  2. planned switchovers under the same write load: the client-visible write gap and rows lost (must be 0).
 * Env: BENCH_DB_SECONDS (default 20), BENCH_DB_RATE (commits/s, default 1000), BENCH_DB_SWITCHOVERS (default 3).
 */
import { performance } from 'node:perf_hooks';
import type pg from 'pg';
import type { PostgresNode } from '../../adapters/postgres/embedded.js';
import { switchover, type SwitchoverTimings } from '../../src/replication/db/choreography.js';
import { percentile, table } from '../lib/report.js';
import { BenchCluster, connect } from './cluster.js';

const SECONDS = Number(process.env.BENCH_DB_SECONDS ?? 20);
const RATE = Number(process.env.BENCH_DB_RATE ?? 1000);
const SWITCHOVERS = Number(process.env.BENCH_DB_SWITCHOVERS ?? 3);
const WORKERS = 4;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Paced writer: WORKERS connections share the target rate. It follows `target()` (the current primary):
 * on an error it reconnects there and retries, recording acknowledged ids and the longest pause between
 * two acknowledged commits (the write gap a client sees).
 */
class Writer {
  acked: number[] = [];
  commits = 0;
  private stopFlag = false;
  private lastAck = 0;
  maxGapMs = 0;
  private nextId = 1;
  private runs: Promise<void>[] = [];
  constructor(private readonly target: () => PostgresNode) {}

  start(): void {
    const t0 = performance.now();
    this.lastAck = t0;
    for (let w = 0; w < WORKERS; w++) this.runs.push(this.worker(w, t0));
  }

  resetGap(): void {
    this.maxGapMs = 0;
    this.lastAck = performance.now();
  }

  private async worker(w: number, t0: number): Promise<void> {
    let c: pg.Client | null = null;
    let k = 0;
    while (!this.stopFlag) {
      const due = t0 + ((k * WORKERS + w) * 1000) / RATE;
      const wait = due - performance.now();
      if (wait > 1) await sleep(wait);
      try {
        c ??= await connect(this.target());
        const id = this.nextId++;
        await c.query('insert into w (id) values ($1)', [id]);
        const now = performance.now();
        this.maxGapMs = Math.max(this.maxGapMs, now - this.lastAck);
        this.lastAck = now;
        this.acked.push(id);
        this.commits++;
        k++;
      } catch {
        await c?.end().catch(() => undefined);
        c = null;
        await sleep(10);
      }
    }
    await c?.end().catch(() => undefined);
  }

  async stop(): Promise<void> {
    this.stopFlag = true;
    await Promise.all(this.runs);
  }
}

/** Marker rows: commit on the primary, then poll the standby until visible (2 ms polls). */
async function measureLag(primary: PostgresNode, standby: PostgresNode, seconds: number): Promise<{ e2e: number[]; replayLag: number[]; statusLag: number[] }> {
  const p = await connect(primary);
  const s = await connect(standby);
  const e2e: number[] = [];
  const replayLag: number[] = [];
  const statusLag: number[] = [];
  const end = performance.now() + seconds * 1000;
  let id = 1;
  let lastSample = 0;
  while (performance.now() < end) {
    await p.query('insert into marker (id) values ($1)', [id]);
    const acked = performance.now();
    for (let i = 0; i < 2500; i++) {
      const r = await s.query('select 1 from marker where id = $1', [id]);
      if (r.rowCount) break;
      await sleep(2);
    }
    e2e.push(performance.now() - acked);
    id++;
    if (performance.now() - lastSample > 500) {
      lastSample = performance.now();
      const r = await p.query<{ ms: string | null }>('select extract(epoch from replay_lag) * 1000 as ms from pg_stat_replication');
      if (r.rows[0]) replayLag.push(Number(r.rows[0].ms ?? 0));
      const st = await standby.status();
      if (st.lagMs !== undefined) statusLag.push(st.lagMs);
    }
    await sleep(40);
  }
  await p.end();
  await s.end();
  return { e2e, replayLag, statusLag };
}

const r1 = (x: number | null) => (x === null ? null : Math.round(x * 10) / 10);

async function main(): Promise<void> {
  const cluster = new BenchCluster();
  const result: Record<string, unknown> = { seconds: SECONDS, targetRate: RATE };
  try {
    const [a, b] = await cluster.create(['alpha', 'beta'], { shared_buffers: '64MB', max_connections: '40' });
    const setup = await connect(a);
    await setup.query('create table w (id bigint primary key, at timestamptz default now())');
    await setup.query('create table marker (id bigint primary key)');
    await setup.end();
    const clone = await b.clone(await a.baseBackup({ slot: b.slotName }), a.endpoint(), { force: false });
    result.clone = { ms: clone.durationMs, bytes: clone.bytes, files: clone.files };

    let primary = a;
    let standby = b;
    const writer = new Writer(() => primary);
    writer.start();
    const t0 = performance.now();
    const lag = await measureLag(primary, standby, SECONDS);
    const rate = writer.commits / ((performance.now() - t0) / 1000);
    result.lag = {
      achievedRate: Math.round(rate),
      e2eMs: { n: lag.e2e.length, p50: r1(percentile(lag.e2e, 50)), p99: r1(percentile(lag.e2e, 99)), max: r1(percentile(lag.e2e, 100)) },
      replayLagMs: { n: lag.replayLag.length, p50: r1(percentile(lag.replayLag, 50)), p99: r1(percentile(lag.replayLag, 99)) },
      standbyStatusLagMs: { n: lag.statusLag.length, p50: r1(percentile(lag.statusLag, 50)), p99: r1(percentile(lag.statusLag, 99)) },
    };

    const switches: (SwitchoverTimings & { clientGapMs: number; lost: number; ackedBefore: number })[] = [];
    for (let i = 0; i < SWITCHOVERS; i++) {
      await sleep(1000);
      writer.resetGap();
      const ackedBefore = writer.acked.length;
      const t = await switchover(primary, standby, { catchUpTimeoutMs: 20_000 });
      [primary, standby] = [standby, primary];
      await sleep(1000); // the writer reconnects to the new primary and commits again
      const c = await connect(primary);
      const present = new Set((await c.query<{ id: string }>('select id from w')).rows.map((r) => Number(r.id)));
      await c.end();
      const lost = writer.acked.slice(0, ackedBefore).filter((id) => !present.has(id)).length;
      switches.push({ ...t, clientGapMs: Math.round(writer.maxGapMs), lost, ackedBefore });
    }
    await writer.stop();
    const c = await connect(primary);
    const present = new Set((await c.query<{ id: string }>('select id from w')).rows.map((r) => Number(r.id)));
    await c.end();
    const lostTotal = writer.acked.filter((id) => !present.has(id)).length;
    result.switchovers = switches;
    result.switchoverSummary = {
      n: switches.length,
      writeGapMsMax: Math.max(...switches.map((s) => s.writeGapMs)),
      clientGapMsMax: Math.max(...switches.map((s) => s.clientGapMs)),
      ackedTotal: writer.acked.length,
      lostTotal,
    };
    const lagRes = result.lag as { e2eMs: { p99: number } };
    result.targets = {
      asyncLagP99Under100ms: lagRes.e2eMs.p99 < 100,
      switchoverGapAtMost2s: switches.every((s) => s.clientGapMs <= 2000),
      zeroLoss: lostTotal === 0,
    };
  } finally {
    await cluster.destroy();
  }
  console.log(JSON.stringify(result));
  const lagR = result.lag as Record<string, { p50: number; p99: number; n: number }> & { achievedRate: number };
  console.log(`\nReplication lag (async, ${lagR.achievedRate} commits/s achieved, target ${RATE})`);
  console.log(table(['e2eMs', 'replayLagMs', 'standbyStatusLagMs'].map((k) => ({ metric: k, n: lagR[k].n, p50: lagR[k].p50, p99: lagR[k].p99 }))));
  console.log('\nPlanned switchovers under load');
  console.log(
    table(
      (result.switchovers as (SwitchoverTimings & { clientGapMs: number; lost: number })[]).map((s, i) => ({
        '#': i + 1, fenceMs: s.fenceMs, catchUpMs: s.catchUpMs, stopMs: s.stopMs, promoteMs: s.promoteMs, repointMs: s.repointMs, writeGapMs: s.writeGapMs, clientGapMs: s.clientGapMs, lost: s.lost,
      })),
    ),
  );
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
