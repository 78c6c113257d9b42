/**
 * Change-to-standby latency of config-file tree sync: nimbus-ha (sender and receiver as separate
 * processes on loopback) against lsyncd, in the same run, each at its default and at its fastest setting:
 * - nimbus-ha with its default batching (batchMs 200, maxBatchMs 500) and with batchMs 0 (ship at once);
 * - lsyncd with its defaults (default.rsync to a local directory, 15 s delay), and with `delay = 0`
 *   both as default.rsync and as default.direct (cp/rm for a local target, lsyncd's fastest).
 * Single edits and bursts of 100 files. Prints one JSON object, then a table.
 *
 *   node dist/bench/files/run.js [--singles N] [--bursts N] [--lsyncd-singles N] [--lsyncd-bursts N] [--no-lsyncd]
 *
 * --lsyncd-singles / --lsyncd-bursts size the default-delay lsyncd run only (15 s per change); the delay-0
 * runs use --singles and --bursts like nimbus-ha.
 */
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';

interface Stats {
  n: number;
  p50Ms: number;
  p99Ms: number;
  minMs: number;
  maxMs: number;
}
interface ToolResult {
  single: Stats;
  burst100: Stats;
}

const args = process.argv.slice(2);
const opt = (name: string, dflt: number) => {
  const i = args.indexOf(name);
  return i >= 0 ? Number(args[i + 1]) : dflt;
};
const SINGLES = opt('--singles', 30);
const BURSTS = opt('--bursts', 10);
const L_SINGLES = opt('--lsyncd-singles', 6);
const L_BURSTS = opt('--lsyncd-bursts', 3);
const POLL_MS = 5;
const MAX_WAIT_MS = 90_000;

function stats(samples: number[]): Stats {
  const s = [...samples].sort((x, y) => x - y);
  const q = (p: number) => s[Math.min(s.length - 1, Math.ceil(p * s.length) - 1)];
  const r = (x: number) => Math.round(x * 10) / 10;
  return { n: s.length, p50Ms: r(q(0.5)), p99Ms: r(q(0.99)), minMs: r(s[0]), maxMs: r(s[s.length - 1]) };
}

const read = (p: string) => {
  try {
    return readFileSync(p, 'utf8');
  } catch {
    return null;
  }
};

async function waitUntil(cond: () => boolean, what: string): Promise<void> {
  const deadline = performance.now() + MAX_WAIT_MS;
  while (!cond()) {
    if (performance.now() > deadline) throw new Error(`timed out after ${MAX_WAIT_MS} ms waiting for ${what}`);
    await sleep(POLL_MS);
  }
}

/** Latency of single edits and of 100-file bursts from `src` to `dst`. */
async function measure(src: string, dst: string, singles: number, bursts: number, tag: string, gapMs: number): Promise<ToolResult> {
  const single: number[] = [];
  for (let i = 0; i < singles; i++) {
    // A new file each time (and new files in every burst): rsync's quick check (size and whole-second mtime) skips a rewrite of the same
    // file within the same second when the size did not change, so lsyncd at delay 0 (default.rsync) can
    // miss back-to-back edits of one file altogether; timing new files compares like with like.
    const name = `edit-${i}.conf`;
    const token = `${tag} single ${i} ${Math.random()}\n`;
    const t0 = performance.now();
    writeFileSync(join(src, name), token);
    await waitUntil(() => read(join(dst, name)) === token, `${tag} single edit ${i}`);
    single.push(performance.now() - t0);
    await sleep(gapMs);
  }
  const burst: number[] = [];
  mkdirSync(join(src, 'burst'), { recursive: true });
  for (let b = 0; b < bursts; b++) {
    const tokens: string[] = [];
    const t0 = performance.now();
    for (let i = 0; i < 100; i++) {
      tokens[i] = `${tag} burst ${b} file ${i} ${Math.random()}\n`;
      writeFileSync(join(src, 'burst', `b${b}-f${i}.conf`), tokens[i]);
    }
    let next = 0;
    await waitUntil(() => {
      while (next < 100 && read(join(dst, 'burst', `b${b}-f${next}.conf`)) === tokens[next]) next++;
      return next === 100;
    }, `${tag} burst ${b}`);
    burst.push(performance.now() - t0);
    await sleep(gapMs);
  }
  return { single: stats(single), burst100: stats(burst) };
}

function waitForLine(child: ChildProcess, re: RegExp, what: string): Promise<RegExpMatchArray> {
  return new Promise((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(() => reject(new Error(`${what}: no "${re}" within 60 s`)), 60_000);
    child.stdout!.on('data', (d: Buffer) => {
      buf += d.toString();
      const m = buf.match(re);
      if (m) {
        clearTimeout(timer);
        resolve(m);
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${what} exited with ${code}`));
    });
  });
}

async function stopChild(child: ChildProcess | undefined): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  await Promise.race([exited, sleep(5000)]);
  if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
}

async function benchNimbusHa(base: string, batchMs: number, maxBatchMs: number): Promise<ToolResult> {
  const src = join(base, `nha-${batchMs}-src`);
  const dst = join(base, `nha-${batchMs}-dst`);
  mkdirSync(src, { recursive: true });
  mkdirSync(dst, { recursive: true });
  const agent = join(dirname(fileURLToPath(import.meta.url)), 'agent.js');
  const secret = 'bench-secret';
  let receiver: ChildProcess | undefined;
  let sender: ChildProcess | undefined;
  try {
    receiver = spawn(process.execPath, [agent, 'receiver', dst, secret], { stdio: ['ignore', 'pipe', 'inherit'] });
    const port = (await waitForLine(receiver, /listening (\d+)/, 'receiver'))[1];
    sender = spawn(process.execPath, [agent, 'sender', src, `http://127.0.0.1:${port}`, secret, String(batchMs), String(maxBatchMs)], { stdio: ['ignore', 'pipe', 'inherit'] });
    await waitForLine(sender, /ready/, 'sender');
    return await measure(src, dst, SINGLES, BURSTS, `nimbus-ha-${batchMs}`, 100);
  } finally {
    await stopChild(sender);
    await stopChild(receiver);
  }
}

function lsyncdBinary(): string | { skipped: string } {
  const which = spawnSync('sh', ['-c', 'command -v lsyncd'], { encoding: 'utf8' });
  if (which.status === 0 && which.stdout.trim()) return which.stdout.trim();
  if (process.getuid?.() !== 0) return { skipped: 'lsyncd is not installed and we are not root (apt-get install -y lsyncd)' };
  const r = spawnSync('apt-get', ['install', '-y', 'lsyncd'], { stdio: 'inherit', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
  if (r.status !== 0) return { skipped: 'apt-get install -y lsyncd failed' };
  return 'lsyncd';
}

/** lsyncd with its defaults (`delay` null: not set) or with `delay = 0`, as default.rsync or default.direct. */
async function benchLsyncd(base: string, bin: string, mode: 'rsync' | 'direct', delay: number | null): Promise<ToolResult> {
  const tag = `lsyncd-${mode}-${delay ?? 'default'}`;
  const src = join(base, `${tag}-src`);
  const dst = join(base, `${tag}-dst`);
  mkdirSync(src, { recursive: true });
  mkdirSync(dst, { recursive: true });
  writeFileSync(join(src, 'marker'), 'initial\n');
  const conf = join(base, `${tag}.conf.lua`);
  // Only the required fields, and `delay` when given; the rsync options stay lsyncd's defaults.
  writeFileSync(
    conf,
    `settings { nodaemon = true, logfile = "${join(base, `${tag}.log`)}", statusFile = "${join(base, `${tag}.status`)}" }\n` +
      `sync { default.${mode}, source = "${src}", target = "${dst}"${delay === null ? '' : `, delay = ${delay}`} }\n`,
  );
  const child = spawn(bin, [conf], { stdio: ['ignore', 'pipe', 'pipe'] });
  try {
    await waitUntil(() => read(join(dst, 'marker')) === 'initial\n', `${tag} initial sync`);
    return delay === null ? await measure(src, dst, L_SINGLES, L_BURSTS, tag, 100) : await measure(src, dst, SINGLES, BURSTS, tag, 100);
  } finally {
    await stopChild(child);
  }
}

function table(rows: [string, ...string[]][]): string {
  const w = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  return rows.map((r) => r.map((c, i) => (i === 0 ? c.padEnd(w[i]) : c.padStart(w[i]))).join('  ')).join('\n');
}

type Result = ToolResult | { skipped: string };
const p50Ratio = (slow: Result, fast: Result, k: 'single' | 'burst100') =>
  'skipped' in slow || 'skipped' in fast ? null : Math.round((slow[k].p50Ms / fast[k].p50Ms) * 100) / 100;

async function main(): Promise<void> {
  const base = mkdtempSync(join(tmpdir(), 'nha-bench-files-'));
  try {
    const nha = await benchNimbusHa(base, 200, 500);
    const nha0 = await benchNimbusHa(base, 0, 500);
    let lsyncd: Result;
    let lsyncd0: Result;
    let lsyncd0Direct: Result;
    if (args.includes('--no-lsyncd')) lsyncd = lsyncd0 = lsyncd0Direct = { skipped: 'disabled with --no-lsyncd' };
    else {
      const bin = lsyncdBinary();
      if (typeof bin === 'string') {
        lsyncd0 = await benchLsyncd(base, bin, 'rsync', 0);
        lsyncd0Direct = await benchLsyncd(base, bin, 'direct', 0);
        lsyncd = await benchLsyncd(base, bin, 'rsync', null);
      } else lsyncd = lsyncd0 = lsyncd0Direct = bin;
    }
    const version = 'skipped' in lsyncd ? null : (() => {
      try {
        return execFileSync('lsyncd', ['--version'], { encoding: 'utf8' }).trim().split('\n')[0];
      } catch {
        return null;
      }
    })();
    const ratio = 'skipped' in lsyncd ? null : { singleP50: p50Ratio(lsyncd, nha, 'single'), burst100P50: p50Ratio(lsyncd, nha, 'burst100') };
    // Each anchor at its fastest setting against nimbus-ha at its fastest (lsyncd delay 0 / nimbus-ha batchMs 0).
    const ratios = {
      defaultSingleP50: ratio?.singleP50 ?? null,
      defaultBurst100P50: ratio?.burst100P50 ?? null,
      delay0SingleP50: p50Ratio(lsyncd0, nha0, 'single'),
      delay0Burst100P50: p50Ratio(lsyncd0, nha0, 'burst100'),
      delay0DirectSingleP50: p50Ratio(lsyncd0Direct, nha0, 'single'),
      delay0DirectBurst100P50: p50Ratio(lsyncd0Direct, nha0, 'burst100'),
    };
    const withInfo = (r: Result, settings: string) => ('skipped' in r ? r : { version, settings, ...r });
    const result = {
      bench: 'files',
      what: 'time from a write on the primary tree until the standby tree holds the new content',
      host: { cpus: (await import('node:os')).cpus().length, node: process.version },
      nimbusHa: { settings: { batchMs: 200, maxBatchMs: 500 }, ...nha },
      nimbusHaBatch0: { settings: { batchMs: 0, maxBatchMs: 500 }, ...nha0 },
      lsyncd: withInfo(lsyncd, 'default.rsync, default delay (15 s)'),
      lsyncdDelay0: withInfo(lsyncd0, 'default.rsync, delay = 0'),
      lsyncdDelay0Direct: withInfo(lsyncd0Direct, 'default.direct (local target), delay = 0'),
      ratio,
      ratios,
      target: {
        p50AtMostOneSecond: nha.single.p50Ms <= 1000 && nha.burst100.p50Ms <= 1000,
        tenTimesFasterThanLsyncd: ratio ? (ratio.singleP50 ?? 0) >= 10 && (ratio.burst100P50 ?? 0) >= 10 : null,
        delay0AtLeastAsFast: ratios.delay0SingleP50 === null ? null : ratios.delay0SingleP50 >= 1,
      },
    };
    console.log(JSON.stringify(result, null, 2));
    const row = (name: string, r: Result): [string, ...string[]][] =>
      'skipped' in r
        ? [[name, 'skipped', r.skipped, '', '', '']]
        : [
            [name, 'single edit', String(r.single.n), r.single.p50Ms.toFixed(1), r.single.p99Ms.toFixed(1), r.single.maxMs.toFixed(1)],
            [name, 'burst of 100', String(r.burst100.n), r.burst100.p50Ms.toFixed(1), r.burst100.p99Ms.toFixed(1), r.burst100.maxMs.toFixed(1)],
          ];
    const x = (v: number | null) => (v === null ? '-' : `${v}x`);
    console.log(
      '\n' +
        table([
          ['tool (setting)', 'case', 'n', 'p50 ms', 'p99 ms', 'max ms'],
          ...row('nimbus-ha (batchMs 200, default)', nha),
          ...row('nimbus-ha (batchMs 0)', nha0),
          ...row('lsyncd (default.rsync, delay 15 s, default)', lsyncd),
          ...row('lsyncd (default.rsync, delay 0)', lsyncd0),
          ...row('lsyncd (default.direct, delay 0)', lsyncd0Direct),
        ]) +
        `\n\nlsyncd / nimbus-ha (p50), defaults: single ${x(ratios.defaultSingleP50)}, burst ${x(ratios.defaultBurst100P50)}` +
        `\nlsyncd delay 0 / nimbus-ha batchMs 0 (p50): default.rsync single ${x(ratios.delay0SingleP50)}, burst ${x(ratios.delay0Burst100P50)}; default.direct single ${x(ratios.delay0DirectSingleP50)}, burst ${x(ratios.delay0DirectBurst100P50)}` +
        '\n(p99 of a small sample is close to its maximum)',
    );
  } finally {
    rmSync(base, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err instanceof Error ? err.stack ?? err.message : String(err));
  process.exit(1);
});
