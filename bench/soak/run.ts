/**
 * bench:soak — the head-node pair (fixtures/cluster.ts: two sidecars with embedded PostgreSQL, Cumulus
 * stand-ins, file sync, witness, VIPs) under steady load for N minutes: synchronous commits through the
 * database VIP (4 writers, up to 200 commits/s), an image upload and a config edit every few seconds, and
 * a planned switchover every 5 minutes. Every 10 s it samples each sidecar's RSS, heap, open file
 * descriptors and active resources (its own /metrics: prom-client's process and Node.js gauges, the
 * latter from process.getActiveResourcesInfo(), summed over types) and the bytes of every directory the node writes.
 * The last line is JSON: { targets, minutes, lost_rows, lost_images, nodes: { a: {...}, b: {...} } }.
 * A primary holds more than a standby (the front, the senders, client sessions), so growth and drift
 * compare like with like: each node's figures per role (`by_role`: first and last settled sample in that
 * role, fds and active resources at the end of every term in it), and `rss_growth_pct` is the last
 * sample in the role the node had after warm-up over that first sample (`rss_growth_pct_raw`: end over
 * start, whatever the roles). Two samples differ by ± 10-15 % with garbage collection and the allocator,
 * so growth is also fitted: `by_role.*.rss_trend` is a least-squares line through every settled sample
 * in the role (MiB per hour, and its growth over the run). `targets` holds the worst of those over both
 * nodes and whether the targets (fitted growth ≤ 5 %, fds and resources within ± 2 of the first term's,
 * nothing lost, archive under its cap) were met. bench/soak/analyze.ts recomputes them from --samples.
 *
 *   npm run bench:soak -- --minutes 10 [--json] [--archive-max-mb 256] [--edit-files 50] [--svg FILE] [--samples FILE] [--child-env K=V,...] [--child-env-a K=V,...] [--child-env-b K=V,...]
 *
 * --svg writes a chart of RSS, heap, active resources and disk use over time for both nodes (switchovers
 * marked); --samples writes every sample as JSON.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { Cluster } from '../../fixtures/cluster.js';
import { DbWriter } from '../../fixtures/db-writer.js';
import { FileWriter, Uploader, objectMd5, sleep, store } from '../../src/cli/chaos/load.js';
import { svgPlot, type Series } from '../lib/svg-plot.js';
import { byRole, pct, type RoleStats, type Sample } from './analyze.js';

type Node = 'a' | 'b';
const NODES: Node[] = ['a', 'b'];

function arg(name: string, def: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : def;
}
const minutes = arg('minutes', 10);
const archiveMaxMb = arg('archive-max-mb', 256);
const warmupMs = arg('warmup-s', 120) * 1000;
const switchoverMs = arg('switchover-s', 300) * 1000;
const json = process.argv.includes('--json');
function argPath(name: string): string | null {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1] : null;
}
const svgFile = argPath('svg');
const samplesFile = argPath('samples');
const say = (m: string) => (json ? console.error(m) : console.log(m));


async function scrape(url: string): Promise<{ values: Record<string, number>; role: string | null }> {
  const out: Record<string, number> = {};
  let role: string | null = null;
  try {
    const text = await (await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(3000) })).text();
    for (const line of text.split('\n')) {
      const m = /^nimbus_ha_(process_resident_memory_bytes|nodejs_heap_size_used_bytes|nodejs_heap_size_total_bytes|nodejs_external_memory_bytes|process_open_fds) ([0-9.e+]+)$/.exec(line);
      if (m) out[m[1]] = Number(m[2]);
      // Active resources by type (FSEventWrap, TCPWrap, Timeout...): their sum.
      const r = /^nimbus_ha_nodejs_active_resources\{[^}]*\} ([0-9.e+]+)$/.exec(line);
      if (r) out.nodejs_active_resources = (out.nodejs_active_resources ?? 0) + Number(r[1]);
      const ro = /^nimbus_ha_role\{role="([a-z_]+)"\} 1$/.exec(line);
      if (ro) role = ro[1];
    }
  } catch {
    /* a node restarting: no sample */
  }
  return { values: out, role };
}

/** RssAnon and RssFile of a process (Linux /proc/PID/status), in bytes; null where unreadable. */
function procRss(pid: number | undefined): { rssAnon: number | null; rssFile: number | null } {
  try {
    const text = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (k: string) => {
      const m = new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(text);
      return m ? Number(m[1]) * 1024 : null;
    };
    return { rssAnon: kb('RssAnon'), rssFile: kb('RssFile') };
  } catch {
    return { rssAnon: null, rssFile: null };
  }
}

const execFileAsync = promisify(execFile);

/**
 * Bytes under a path (`du -sb`), without blocking this process: its event loop carries the cluster's
 * heartbeat path proxies and witness links (fixtures/path-proxy.ts), so a synchronous `du` over a large
 * tree would stall every path at once and cost the primary its lease.
 */
async function duBytes(path: string): Promise<number> {
  try {
    const { stdout } = await execFileAsync('du', ['-sb', path]);
    return Number(stdout.split('\t')[0]);
  } catch {
    return 0;
  }
}

async function dirsOf(dataDir: string): Promise<Record<string, number>> {
  let history = 0;
  for (const f of ['events.jsonl', ...[1, 2, 3, 4, 5].map((i) => `events.jsonl.${i}`)]) history += await duBytes(join(dataDir, f));
  return {
    archive: await duBytes(join(dataDir, 'wal-archive')),
    pg: await duBytes(join(dataDir, 'pg')),
    quarantine: await duBytes(join(dataDir, 'quarantine')),
    cumulus: await duBytes(join(dataDir, 'cumulus')),
    history,
    total: await duBytes(dataDir),
  };
}

async function main(): Promise<void> {
  const archiveLimit = archiveMaxMb * 1024 * 1024;
  // --keep-dir DIR: the stack lives there and stays after the run (node logs, events.jsonl, server logs).
  const keepDir = argPath('keep-dir');
  const c = new Cluster({ db: { sync: 'sync', degradeAfterMs: 3000 }, repo: true, files: true, ...(keepDir ? { dir: keepDir } : {}) });
  // Small limits so retention and rotation are exercised within minutes.
  const prepare = c.prepare.bind(c);
  c.prepare = async () => {
    await prepare();
    for (const n of NODES) {
      const cfg = parse(readFileSync(c.nodes[n].configFile, 'utf8')) as Record<string, any>;
      cfg.db.archiveMaxBytes = archiveLimit;
      cfg.db.archiveRetention = { maxAgeHours: 0.05, keepMb: Math.min(64, Math.floor(archiveMaxMb / 4)) };
      cfg.history = { ...(cfg.history ?? {}), maxBytes: 1024 * 1024, files: 3 };
      writeFileSync(c.nodes[n].configFile, stringify(cfg));
    }
  };
  // --child-env K=V[,K=V]: extra environment of both sidecars (after the executable's own, e.g. allocator
  // settings); --child-env-a / --child-env-b: of one node only, to compare a setting against the other node
  // under the same load (both nodes take both roles in turn).
  const envArg = (name: string) => Object.fromEntries((argPath(name) ?? '').split(',').filter(Boolean).map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]));
  const childEnv = envArg('child-env');
  for (const n of NODES) c.env[n] = { ...(c.env[n] ?? {}), ...childEnv, ...envArg(`child-env-${n}`) };
  const cleanup = c.stopOnSignals();
  const writers: DbWriter[] = [];
  let uploader: Uploader | null = null;
  let files: FileWriter | null = null;
  const samples: Record<Node, Sample[]> = { a: [], b: [] };
  const switchovers: { at: number; from: string; ok: boolean }[] = [];
  let archiveOverLimit = 0;
  try {
    say(`soak: ${minutes} min, archive cap ${archiveMaxMb} MiB; stack in ${c.dir}`);
    await c.start();
    await c.waitFor((a, b) => (a?.role === 'primary' && b?.role === 'standby' && b?.replication?.db?.streaming === true) || (b?.role === 'primary' && a?.role === 'standby' && a?.replication?.db?.streaming === true), 180_000, 'a primary and a streaming standby');
    const vipStore = store(c.repoUrl);
    for (let i = 0; i < 4; i++) {
      const w = new DbWriter(c.dbUrl, { table: `soak_rows_${i}`, everyMs: 20 });
      for (let k = 0; ; k++) {
        try {
          await w.prepare();
          break;
        } catch (err) {
          if (k > 60) throw err;
          await sleep(500);
        }
      }
      w.start();
      writers.push(w);
    }
    uploader = new Uploader(vipStore, 'VMS/soak/', 3000);
    uploader.start();
    // --edit-files N (default 50): the config writer edits N files in turn, so the tree does not grow with
    // the run's length (a steady load); --edit-files 0 writes a new file each time instead.
    files = new FileWriter(NODES.map((n) => ({ name: n, url: c.nodes[n].url, etcDir: c.nodes[n].etcDir })), 3000, arg('edit-files', 50));
    files.start();
    const t0 = Date.now();
    const end = t0 + minutes * 60_000;
    let nextSwitch = t0 + switchoverMs;
    let nextSample = t0;
    while (Date.now() < end) {
      if (Date.now() >= nextSample) {
        nextSample += 10_000;
        for (const n of NODES) {
          const { values: m, role } = await scrape(c.nodes[n].url);
          const dirs = await dirsOf(c.nodes[n].dataDir);
          if (dirs.archive > archiveLimit) archiveOverLimit++;
          samples[n].push({ t: Date.now() - t0, rss: m.process_resident_memory_bytes ?? null, heap: m.nodejs_heap_size_used_bytes ?? null, heapTotal: m.nodejs_heap_size_total_bytes ?? null, external: m.nodejs_external_memory_bytes ?? null, ...procRss(c.nodes[n].proc?.pid), fds: m.process_open_fds ?? null, handles: m.nodejs_active_resources ?? null, role, dirs });
        }
        const rows = writers.reduce((s, w) => s + w.acked.length, 0);
        const la = samples.a.at(-1)!;
        const lb = samples.b.at(-1)!;
        say(`t=${Math.round((Date.now() - t0) / 1000)}s rows=${rows} images=${uploader.acked.size} a: rss=${((la.rss ?? 0) / 2 ** 20).toFixed(1)}MiB anon=${((la.rssAnon ?? 0) / 2 ** 20).toFixed(1)}MiB file=${((la.rssFile ?? 0) / 2 ** 20).toFixed(1)}MiB heap=${((la.heapTotal ?? 0) / 2 ** 20).toFixed(1)}MiB ext=${((la.external ?? 0) / 2 ** 20).toFixed(1)}MiB fds=${la.fds} res=${la.handles} archive=${(la.dirs.archive / 2 ** 20).toFixed(0)}MiB  b: rss=${((lb.rss ?? 0) / 2 ** 20).toFixed(1)}MiB anon=${((lb.rssAnon ?? 0) / 2 ** 20).toFixed(1)}MiB file=${((lb.rssFile ?? 0) / 2 ** 20).toFixed(1)}MiB heap=${((lb.heapTotal ?? 0) / 2 ** 20).toFixed(1)}MiB ext=${((lb.external ?? 0) / 2 ** 20).toFixed(1)}MiB fds=${lb.fds} res=${lb.handles} archive=${(lb.dirs.archive / 2 ** 20).toFixed(0)}MiB`);
      }
      if (Date.now() >= nextSwitch) {
        const p = await c.primary();
        const r = p ? await c.admin(p, '/admin/switchover', {}).catch(() => ({ status: 0, data: null })) : { status: 0, data: null };
        if (p) switchovers.push({ at: Date.now() - t0, from: p, ok: r.status === 202 });
        say(`switchover from ${p ?? '(no primary)'}: ${r.status}${r.status === 202 ? '' : ` ${JSON.stringify(r.data?.message ?? r.data ?? '')}; asking again in 15 s`}`);
        // Refused (the standby not caught up yet, say): asked again shortly; the next one a full interval after it.
        nextSwitch = r.status === 202 ? nextSwitch + switchoverMs : Date.now() + 15_000;
      }
      await sleep(250);
    }
    for (const w of writers) await w.stop();
    await uploader.stop();
    await files.stop();
    await c.waitFor((a, b) => (a?.role === 'primary' && b?.role === 'standby') || (b?.role === 'primary' && a?.role === 'standby'), 60_000, 'a primary and a standby');
    await sleep(3000);
    let lostRows = 0;
    for (const w of writers) lostRows += (await w.missing(c.dbUrl)).length;
    const p = (await c.primary()) ?? 'a';
    const primaryStore = store(`http://127.0.0.1:${c.nodes[p].cumulusPort}`);
    let lostImages = 0;
    for (const [key, md5] of uploader.acked) if ((await objectMd5(primaryStore, key)) !== md5) lostImages++;
    const nodes: Record<string, unknown> = {};
    for (const n of NODES) {
      const s = samples[n];
      const afterWarm = s.find((x) => x.t >= warmupMs && x.rss !== null) ?? s.find((x) => x.rss !== null);
      const last = [...s].reverse().find((x) => x.rss !== null);
      const mib = (b: number | null | undefined) => (b == null ? null : Math.round((b / 2 ** 20) * 10) / 10);
      const hours = last && afterWarm && last.t > afterWarm.t ? (last.t - afterWarm.t) / 3_600_000 : null;
      const roles = byRole(s, switchovers.filter((x) => x.ok).map((x) => x.at), warmupMs);
      nodes[n] = {
        rss_mib: { start: mib(afterWarm?.rss), end: mib(last?.rss), max: mib(Math.max(...s.map((x) => x.rss ?? 0))) },
        // A primary holds more (the front, the senders, client sessions): growth compares like with like.
        rss_growth_pct: roles.growth,
        rss_growth_pct_raw: afterWarm?.rss && last?.rss ? pct(last.rss, afterWarm.rss) : null,
        by_role: roles.byRole,
        // The anonymous part (heap, stacks, allocator) is where a leak shows; the rest of RSS is the node binary's pages, touched once per new code path.
        rss_anon_mib: { start: mib(afterWarm?.rssAnon), end: mib(last?.rssAnon) },
        rss_file_mib: { start: mib(afterWarm?.rssFile), end: mib(last?.rssFile) },
        heap_mib: { start: mib(afterWarm?.heap), end: mib(last?.heap) },
        fds: { start: afterWarm?.fds ?? null, end: last?.fds ?? null, min: Math.min(...s.map((x) => x.fds ?? Infinity)), max: Math.max(...s.map((x) => x.fds ?? 0)) },
        handles: { start: afterWarm?.handles ?? null, end: last?.handles ?? null, min: Math.min(...s.map((x) => x.handles ?? Infinity)), max: Math.max(...s.map((x) => x.handles ?? 0)) },
        archive_bytes: last?.dirs.archive ?? null,
        archive_bytes_max: Math.max(...s.map((x) => x.dirs.archive)),
        archive_limit_bytes: archiveLimit,
        history_bytes: last?.dirs.history ?? null,
        dirs_mib_end: last ? Object.fromEntries(Object.entries(last.dirs).map(([k, v]) => [k, mib(v)])) : null,
        disk_growth_mib_per_hour: hours && last && afterWarm ? Math.round(((last.dirs.total - afterWarm.dirs.total) / 2 ** 20 / hours) * 10) / 10 : null,
      };
    }
    // Role changes, retention events and missed change hints (each turns a standby to listing both
    // repositories every pass) as each node recorded them.
    const roleEvents: unknown[] = [];
    for (const n of NODES) {
      const evs = await c.events(n).catch(() => [] as any[]);
      for (const e of evs) {
        if (/^(failover|switchover|failback|promoted|demoted|fenced|escalation_handover|db\.archive\.|disk\.|repo_hint_missed)/.test(e.type)) roleEvents.push({ node: n, type: e.type, time: e.time, message: String(e.message).slice(0, 160) });
      }
    }
    const rows = writers.reduce((s, w) => s + w.acked.length, 0);
    /** The largest value (growth) or the largest difference either way (drift) over both nodes and roles. */
    const worst = (f: (r: RoleStats) => number | null, either: boolean) => {
      let m: number | null = null;
      for (const n of NODES) for (const r of Object.values((nodes[n] as { by_role: Record<string, RoleStats> }).by_role)) {
        const v = f(r);
        if (v !== null && (m === null || (either ? Math.abs(v) > Math.abs(m) : v > m))) m = v;
      }
      return m;
    };
    const growthWorst = worst((r) => r.rss_growth_pct, false);
    const trendWorst = worst((r) => r.rss_trend?.growth_pct ?? null, false);
    const fdsWorst = worst((r) => r.fds_drift_max, true);
    const handlesWorst = worst((r) => r.handles_drift_max, true);
    const targets = {
      rss_growth_pct_worst: growthWorst,
      rss_trend_growth_pct_worst: trendWorst,
      fds_drift_worst: fdsWorst,
      handles_drift_worst: handlesWorst,
      met: lostRows === 0 && lostImages === 0 && archiveOverLimit === 0 && (trendWorst ?? 0) <= 5 && Math.abs(fdsWorst ?? 0) <= 2 && Math.abs(handlesWorst ?? 0) <= 2,
    };
    const result = {
      targets,
      events: roleEvents,
      minutes,
      rows_acked: rows,
      commits_per_s: Math.round(rows / (minutes * 60)),
      images_acked: uploader.acked.size,
      files_acked: files.acked.size,
      lost_rows: lostRows,
      lost_images: lostImages,
      switchovers,
      archive_over_limit_samples: archiveOverLimit,
      nodes,
    };
    if (samplesFile) writeFileSync(samplesFile, JSON.stringify({ switchovers, samples }));
    if (svgFile) {
      writeFileSync(svgFile, chart(samples, switchovers, minutes));
      say(`chart written to ${svgFile}`);
    }
    console.log(JSON.stringify(result));
  } finally {
    for (const w of writers) await w.stop().catch(() => undefined);
    await uploader?.stop().catch(() => undefined);
    await files?.stop().catch(() => undefined);
    await cleanup();
  }
}

/** RSS (and its anonymous part), heap, active resources and disk use of both nodes over the run, switchovers marked. */
function chart(samples: Record<Node, Sample[]>, switchovers: { at: number; from: string; ok: boolean }[], minutes: number): string {
  const colors: Record<Node, string> = { a: '#1f77b4', b: '#ff7f0e' };
  const min = (t: number) => Math.round((t / 60_000) * 100) / 100;
  const mib = (v: number | null) => (v === null ? null : Math.round((v / 2 ** 20) * 10) / 10);
  const series = (label: string, pick: (x: Sample) => number | null, dashed = false): Series[] =>
    NODES.map((n) => ({ label: `${n} ${label}`, color: colors[n], dashed, points: samples[n].map((x) => [min(x.t), pick(x)] as [number, number | null]) }));
  return svgPlot({
    title: `nimbus-ha soak: ${minutes} min, steady load, a switchover every ${Math.round(switchoverMs / 60_000)} min`,
    xLabel: 'minutes',
    markerLegend: 'switchover',
    markers: switchovers.filter((s) => s.ok).map((s) => ({ x: min(s.at), label: `switchover from ${s.from}` })),
    panels: [
      { title: 'sidecar memory: RSS and its anonymous part', unit: 'MiB', series: [...series('RSS', (x) => mib(x.rss)), ...series('RSS anonymous', (x) => mib(x.rssAnon ?? null), true)] },
      { title: 'V8 heap', unit: 'MiB', series: [...series('heap used', (x) => mib(x.heap)), ...series('heap total', (x) => mib(x.heapTotal ?? null), true)] },
      { title: 'active resources and open fds', unit: 'count', series: [...series('resources', (x) => x.handles), ...series('fds', (x) => x.fds, true)] },
      { title: 'disk', unit: 'MiB', series: [...series('node dir', (x) => mib(x.dirs.total)), ...series('WAL archive', (x) => mib(x.dirs.archive), true)] },
    ],
  });
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
