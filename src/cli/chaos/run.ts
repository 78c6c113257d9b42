/**
 * `nimbus-ha chaos`: the demo's full head-node stack under continuous load, faults from a seeded random
 * schedule (or named scenarios), and an independent checker that compares what clients were told with
 * what the nodes hold. See docs/reliability.md ("Chaos harness").
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import pg from 'pg';
import { Cluster, DB_PASSWORD } from '../../../fixtures/cluster.js';
import { DbWriter } from '../../../fixtures/db-writer.js';
import { createUser } from '../../../fixtures/nimbus-vm-service/new-user.js';
import { TIMING_PROFILES, type TimingProfile } from '../../config/schema.js';
import { percentile } from '../../util/stats.js';
import { countPanics, dataChecker } from './check.js';
import { catalogue, recordNamesBoth, SCENARIOS, type FaultCtx, type Node } from './faults.js';
import { Ec2Client, FileWriter, Uploader, sleep, store } from './load.js';
import { formatCycle, gapOf, sum, type CycleReport, type PathCount } from './report.js';
import { cycleSeed, Rng } from './rng.js';
import { RoleWatch } from './watch.js';

/** The report types and the cycle formatter live in report.ts; re-exported so importers of this module keep working. */
export { formatCycle, type CycleReport, type PathCount } from './report.js';

export interface ChaosOptions {
  cycles: number;
  seed: number;
  scenarios: string[];
  profile: TimingProfile;
  json: boolean;
  /** Upper bound for a cycle to converge after its fault was undone (ms). */
  convergeMs?: number;
  /** Print progress lines (default: unless json). */
  quiet?: boolean;
  /** Wall-clock budget (ms) from the start: no cycle starts after it. A cycle that started still gets its full convergence bound (a cut-short wait would report a healing stack as lost data). */
  budgetMs?: number;
}

export const DEFAULT_KINDS = Object.keys(catalogue(3000));

export async function runChaos(opts: ChaosOptions): Promise<{ cycles: CycleReport[]; summary: Record<string, unknown>; dir: string | null }> {
  // With --json, progress goes to stderr so that stdout ends with the one JSON object.
  const say = (m: string) => {
    if (opts.quiet) return;
    if (opts.json) console.error(m);
    else console.log(m);
  };
  const leaseMs = TIMING_PROFILES[opts.profile].leaseMs;
  const degradeAfterMs = 3000;
  const convergeMs = opts.convergeMs ?? (opts.profile === 'frugal' ? 240_000 : 180_000);
  const kinds = catalogue(degradeAfterMs);
  for (const s of opts.scenarios) if (!kinds[s]) throw new Error(`unknown scenario ${s}; known: ${Object.keys(kinds).join(', ')}`);
  const runStart = Date.now();
  const dir = mkdtempSync(join(tmpdir(), 'nimbus-ha-chaos-'));
  const c = new Cluster({ dir, db: { sync: 'sync', degradeAfterMs }, repo: true, nimbus: true, timings: opts.profile === 'fast' ? undefined : { profile: opts.profile } });
  const cleanup = c.stopOnSignals();
  const cycles: CycleReport[] = [];
  let keep = false;
  let writer: DbWriter | null = null;
  let uploader: Uploader | null = null;
  let files: FileWriter | null = null;
  let ec2c: Ec2Client | null = null;
  let watch: RoleWatch | null = null;
  try {
    say(`nimbus-ha chaos: seed ${opts.seed}, ${opts.cycles} cycles, profile ${opts.profile}${opts.scenarios.length ? `, scenarios ${opts.scenarios.join(' ')}` : ''}; stack in ${dir}`);
    await c.start();
    await c.waitFor((a, b) => (a?.role === 'primary' && b?.role === 'standby') || (b?.role === 'primary' && a?.role === 'standby'), 120_000, 'a primary and a standby');

    const status = (n: Node) => c.status(n, 1500);
    const primary = async (ms = 0): Promise<Node | null> => {
      const end = Date.now() + ms;
      for (;;) {
        const p = await c.primary();
        if (p || Date.now() >= end) return p;
        await sleep(100);
      }
    };
    const converged = async (): Promise<Node | null> => {
      const [a, b] = await Promise.all([status('a'), status('b')]);
      if (!a || !b) return null;
      const roles = [a.role, b.role];
      if (roles.filter((r) => r === 'primary').length !== 1 || !roles.includes('standby')) return null;
      const [p, s] = a.role === 'primary' ? [a, b] : [b, a];
      if (s.replication?.db?.streaming !== true) return null;
      if (p.peers?.[0]?.caught_up !== true) return null;
      if (!recordNamesBoth(p)) return null; // the standby is a holder again (it may promote on the next fault)
      return a.role === 'primary' ? 'a' : 'b';
    };
    const p0 = await (async () => {
      const end = Date.now() + 180_000;
      while (Date.now() < end) {
        const p = await converged();
        if (p) return p;
        await sleep(250);
      }
      return null;
    })();
    if (!p0) throw new Error('the stack did not converge at start (one primary, standby streaming and caught up)');
    // The VIPs bind a moment after the role is taken: retry the setup calls for a while.
    const retry = async <T>(what: string, fn: () => Promise<T>): Promise<T> => {
      const end = Date.now() + 60_000;
      for (;;) {
        try {
          return await fn();
        } catch (err) {
          if (Date.now() > end) throw new Error(`${what}: ${(err as Error).message}`);
          await sleep(500);
        }
      }
    };
    const user = await retry('creating the cloud user', async () => {
      const pool = new pg.Pool({ connectionString: c.dbUrl, max: 1 });
      pool.on('error', () => undefined);
      try {
        return await createUser(pool, `chaos${Date.now() % 100000}`);
      } finally {
        await pool.end();
      }
    });
    const vipStore = store(c.repoUrl);
    const base = Buffer.alloc(64 * 1024, 7);
    await retry('uploading the base image', () => vipStore.put('VMS/common/chaos-base.img', Readable.from([base]), base.length));

    writer = new DbWriter(c.dbUrl, { table: 'chaos_rows', everyMs: 20 });
    await writer.prepare();
    writer.start();
    uploader = new Uploader(vipStore, 'VMS/chaos/', 300);
    uploader.start();
    files = new FileWriter((['a', 'b'] as const).map((n) => ({ name: n, url: c.nodes[n].url, etcDir: c.nodes[n].etcDir })), 500);
    files.start();
    ec2c = new Ec2Client(c.vipUrl, user, 500);
    ec2c.start();
    watch = new RoleWatch({ a: c.nodes.a.url, b: c.nodes.b.url }, 10);
    watch.start();
    await sleep(2000);
    say(`stack up: ${p0} primary; load running (SQL ${c.dbUrl.replace(DB_PASSWORD, '***')}, S3 ${c.repoUrl}, EC2 ${c.vipUrl})`);

    const w = writer;
    const ctx: FaultCtx = {
      c,
      rng: new Rng(1),
      leaseMs,
      rows: { count: () => w.acked.length },
      log: say,
      primary,
      waitPrimary: async (n, ms) => {
        const end = Date.now() + ms;
        while (Date.now() < end) {
          if ((await status(n))?.role === 'primary') return true;
          await sleep(50);
        }
        return false;
      },
      restoreAll: () => {
        if (!c.witness || c.witness.exitCode !== null || c.witness.signalCode) c.startWitness();
        for (const n of ['a', 'b'] as const) {
          const s = c.nodes[n];
          if (!s.cumulus || s.cumulus.exitCode !== null || s.cumulus.signalCode) c.startCumulus(n);
          if (!s.proc || s.proc.exitCode !== null || s.proc.signalCode) c.startNode(n);
          for (const pp of s.inbound) {
            pp.up();
            pp.setLoss(0);
          }
          s.witnessLink?.up();
        }
      },
    };

    const checkData = dataChecker(c, w, uploader, files);

    /**
     * Converged: one primary and one standby streaming (as the nodes say), writes through the database VIP
     * acknowledged again, and, checked by the harness itself, the standby holding every row, image and
     * file acknowledged so far. Returns the primary and the last data check.
     */
    const waitConverged = async (ms: number, amb: () => [number, number, number]) => {
      const end = Date.now() + ms;
      const base = w.acked.length;
      let last: Awaited<ReturnType<typeof checkData>> | null = null;
      let lastP: Node | null = null;
      while (Date.now() < end) {
        const p = await converged();
        if (p && w.acked.length > base) {
          lastP = p;
          last = await checkData(p, ...amb());
          if (last.complete) return { p, data: last, ok: true };
        }
        await sleep(250);
      }
      if (!last) {
        const p = await primary();
        if (p) {
          lastP = p;
          last = await checkData(p, ...amb());
        }
      }
      return { p: lastP, data: last, ok: false };
    };

    let panicsSeen = await countPanics(dir);
    const all = Object.keys(kinds);
    const deadline = opts.budgetMs ? runStart + opts.budgetMs : Infinity;
    for (let i = 1; i <= opts.cycles; i++) {
      if (Date.now() >= deadline) {
        say(`time budget of ${opts.budgetMs} ms used up: stopping before cycle ${i}`);
        break;
      }
      const seed = cycleSeed(opts.seed, i);
      ctx.rng = new Rng(seed);
      const scenario = opts.scenarios.length ? opts.scenarios[(i - 1) % opts.scenarios.length] : ctx.rng.pick(all);
      const before = await primary(10_000);
      const dpBefore = watch.doublePrimary;
      const regBefore = watch.epochRegressions.length;
      const crashesBefore = c.crashes.length;
      const errBefore = { rows: w.errors, images: uploader.failed, files: files.ambiguous };
      const t0 = Date.now();
      let result;
      try {
        result = await kinds[scenario](ctx, before ?? 'a');
      } catch (err) {
        result = { fault: `${scenario} (injection failed: ${(err as Error).message})`, violations: [`injection failed: ${(err as Error).message}`], at: t0, notes: {} };
        ctx.restoreAll();
      }
      const at = result.at ?? t0;
      const healed = Date.now();
      const up = uploader;
      const fw = files;
      const conv = await waitConverged(convergeMs, () => [w.errors - errBefore.rows, up.failed - errBefore.images, fw.ambiguous - errBefore.files]);
      const convergedAt = Date.now();
      const p = conv.ok ? conv.p : null;
      const data = conv.data;
      const st = p ? await status(p) : null;
      // detection and promotion as the new primary reported them (for information only)
      let detect: number | null = null;
      let promote: number | null = null;
      if (conv.p) {
        const evs = (await c.events(conv.p, 'failover').catch(() => [])).filter((e: any) => Date.parse(e.time) >= at);
        const d = evs.at(-1)?.details;
        if (d) {
          detect = d.detect_ms ?? null;
          promote = d.promote_ms ?? null;
        }
      }
      const panics = await countPanics(dir);
      const zero: PathCount = { acked: 0, lost: 0, ambiguous: 0, standby_missing: 0 };
      const r: CycleReport = {
        cycle: i,
        seed,
        scenario,
        fault: result.fault,
        primary_before: before,
        primary_after: conv.p,
        epoch_after: (st?.epoch as number | undefined) ?? null,
        detect_ms: detect,
        promote_ms: promote,
        client_gap_ms: { sql: gapOf(w.ackedAt, at, convergedAt), s3: uploader.times.gapBetween(at, convergedAt), ec2: ec2c.times.gapBetween(at, convergedAt) },
        rows: data?.rows ?? zero,
        images: data?.images ?? zero,
        files: data?.files ?? zero,
        double_primary_samples: watch.doublePrimary - dpBefore,
        epoch_regressions: watch.epochRegressions.length - regBefore,
        panics: panics - panicsSeen,
        converged: p !== null,
        converge_ms: p ? convergedAt - healed : null,
        violations: result.violations,
        notes: result.notes,
        ok: true,
      };
      panicsSeen = panics;
      if (!r.converged) r.violations.push(`did not converge within ${convergeMs} ms (one primary, standby streaming and named in the data-holder record, writes through the VIP, every acknowledged row, image and file on the standby)`);
      if (r.rows.lost !== 0) r.violations.push(`${r.rows.lost} acknowledged rows missing on the primary`);
      if (r.images.lost !== 0) r.violations.push(`${r.images.lost} acknowledged images missing on the primary and not kept aside`);
      if (r.files.lost !== 0) r.violations.push(`${r.files.lost} acknowledged config files missing on the primary and not kept aside`);
      if (r.double_primary_samples) r.violations.push(`${r.double_primary_samples} samples with two primaries`);
      if (r.epoch_regressions) r.violations.push(`epoch went backwards: ${JSON.stringify(watch.epochRegressions.slice(regBefore))}`);
      if (r.panics) r.violations.push(`${r.panics} PostgreSQL PANIC lines in node logs`);
      for (const x of c.crashes.slice(crashesBefore)) {
        r.violations.push(`the sidecar of ${x.node} exited on its own (${x.signal ?? `code ${x.code}`}); see node-${x.node}.log`);
      }
      r.ok = r.violations.length === 0;
      cycles.push(r);
      say(formatCycle(r));
      if (!r.ok) {
        keep = true;
        say(`   FAILED: ${r.violations.join('; ')}\n   replay: nimbus-ha chaos --seed ${opts.seed} --cycles ${i}${opts.scenarios.length ? ` --scenario ${opts.scenarios.join(' ')}` : ''}${opts.profile !== 'fast' ? ` --profile ${opts.profile}` : ''}   (cycle seed ${seed}; logs kept in ${dir})`);
      }
      if (!r.converged) break; // the next fault would hit a stack in an unknown state
    }
  } finally {
    await ec2c?.stop();
    await files?.stop();
    await uploader?.stop();
    await writer?.stop();
    await watch?.stop();
    await cleanup();
    if (!keep) rmSync(dir, { recursive: true, force: true });
  }
  const conv = cycles.filter((x) => x.converge_ms !== null).map((x) => x.converge_ms!) ;
  const summary = {
    cycles: cycles.length,
    seed: opts.seed,
    profile: opts.profile,
    lost: { rows: sum(cycles.map((x) => Math.max(0, x.rows.lost))), images: sum(cycles.map((x) => Math.max(0, x.images.lost))), files: sum(cycles.map((x) => Math.max(0, x.files.lost))) },
    double_primary_samples: sum(cycles.map((x) => x.double_primary_samples)),
    double_primary_polls: watch?.samples ?? 0,
    epoch_regressions: sum(cycles.map((x) => x.epoch_regressions)),
    unconverged: cycles.filter((x) => !x.converged).length,
    panics: sum(cycles.map((x) => x.panics)),
    failed_cycles: cycles.filter((x) => !x.ok).map((x) => ({ cycle: x.cycle, seed: x.seed, scenario: x.scenario })),
    converge_ms: { p50: percentile(conv, 50), p99: percentile(conv, 99), max: conv.length ? Math.max(...conv) : null },
    acked: { rows: cycles.at(-1)?.rows.acked ?? 0, images: cycles.at(-1)?.images.acked ?? 0, files: cycles.at(-1)?.files.acked ?? 0, instances: ec2c?.launched.length ?? 0 },
    kept_dir: keep ? dir : null,
  };
  if (opts.json) console.log(JSON.stringify({ cycles, summary }));
  else if (!opts.quiet) {
    console.log(`\nsummary: ${summary.cycles} cycles (seed ${opts.seed}, ${opts.profile}); lost rows ${summary.lost.rows}, images ${summary.lost.images}, files ${summary.lost.files}; double-primary samples ${summary.double_primary_samples} of ${summary.double_primary_polls}; unconverged ${summary.unconverged}; PANICs ${summary.panics}; converge p50 ${summary.converge_ms.p50} ms, p99 ${summary.converge_ms.p99} ms`);
    if (keep) console.log(`failing cycles kept their logs in ${dir}`);
  }
  return { cycles, summary, dir: keep ? dir : null };
}

export function registerChaosCommand(program: import('commander').Command): void {
  program
    .command('chaos')
    .description('fault-injection harness: the demo stack under load, seeded random faults, an independent checker of acknowledged data and primaries')
    .option('--cycles <n>', 'fault cycles', (v) => Number(v), 10)
    .option('--seed <s>', 'schedule seed (a failing cycle prints the seed and --cycles that replay it)', (v) => Number(v))
    .option('--scenario <name...>', `run these faults in turn instead of a random schedule (${SCENARIOS.join(', ')}, or any fault kind)`)
    .option('--profile <p>', `timing profile: ${Object.keys(TIMING_PROFILES).join(' | ')}`, 'fast')
    .option('--json', 'the last line is one JSON object {cycles, summary}')
    .option('--budget <seconds>', 'start no cycle after this many seconds', (v) => Number(v))
    .action(async (o: { cycles: number; seed?: number; scenario?: string[]; profile: string; json?: boolean; budget?: number }) => {
      if (!(o.profile in TIMING_PROFILES)) throw new Error(`--profile must be one of ${Object.keys(TIMING_PROFILES).join(', ')}`);
      if (!Number.isInteger(o.cycles) || o.cycles < 1) throw new Error('--cycles must be a positive integer');
      const seed = o.seed ?? Math.floor(Math.random() * 2 ** 31);
      const res = await runChaos({ cycles: o.cycles, seed, scenarios: o.scenario ?? [], profile: o.profile as TimingProfile, json: !!o.json, ...(o.budget ? { budgetMs: o.budget * 1000 } : {}) });
      const s = res.summary as { lost: { rows: number; images: number; files: number }; double_primary_samples: number; unconverged: number; panics: number; failed_cycles: unknown[] };
      if (s.lost.rows || s.lost.images || s.lost.files || s.double_primary_samples || s.unconverged || s.panics || s.failed_cycles.length) process.exitCode = 1;
    });
}
