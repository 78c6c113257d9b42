/**
 * Change-to-standby latency of config-file tree sync: nimbus-ha (sender and receiver as separate
 * processes on loopback) against lsyncd with its default settings (default.rsync to a local directory),
 * in the same run. Single edits and bursts of 100 files. Prints one JSON object, then a table.
 *
 *   node dist/bench/files/run.js [--singles N] [--bursts N] [--lsyncd-singles N] [--lsyncd-bursts N] [--no-lsyncd]
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
    const name = `edit-${i % 5}.conf`;
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
      writeFileSync(join(src, 'burst', `f${i}.conf`), tokens[i]);
    }
    let next = 0;
    await waitUntil(() => {
      while (next < 100 && read(join(dst, 'burst', `f${next}.conf`)) === tokens[next]) next++;
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

async function benchNimbusHa(base: string): Promise<ToolResult> {
  const src = join(base, 'nha-src');
  const dst = join(base, 'nha-dst');
  mkdirSync(src, { recursive: true });
  mkdirSync(dst, { recursive: true });
  const agent = join(dirname(fileURLToPath(import.meta.url)), 'agent.js');
  const secret = 'bench-secret';
  let receiver: ChildProcess | undefined;
  let sender: ChildProcess | undefined;
  try {
    receiver = spawn(process.execPath, [agent, 'receiver', dst, secret], { stdio: ['ignore', 'pipe', 'inherit'] });
    const port = (await waitForLine(receiver, /listening (\d+)/, 'receiver'))[1];
    sender = spawn(process.execPath, [agent, 'sender', src, `http://127.0.0.1:${port}`, secret], { stdio: ['ignore', 'pipe', 'inherit'] });
    await waitForLine(sender, /ready/, 'sender');
    return await measure(src, dst, SINGLES, BURSTS, 'nimbus-ha', 100);
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

async function benchLsyncd(base: string, bin: string): Promise<ToolResult> {
  const src = join(base, 'lsyncd-src');
  const dst = join(base, 'lsyncd-dst');
  mkdirSync(src, { recursive: true });
  mkdirSync(dst, { recursive: true });
  writeFileSync(join(src, 'marker'), 'initial\n');
  const conf = join(base, 'lsyncd.conf.lua');
  // Default settings: only the required fields; `delay` and rsync options stay lsyncd's defaults.
  writeFileSync(
    conf,
    `settings { nodaemon = true, logfile = "${join(base, 'lsyncd.log')}", statusFile = "${join(base, 'lsyncd.status')}" }\n` +
      `sync { default.rsync, source = "${src}", target = "${dst}" }\n`,
  );
  const child = spawn(bin, [conf], { stdio: ['ignore', 'pipe', 'pipe'] });
  try {
    await waitUntil(() => read(join(dst, 'marker')) === 'initial\n', 'lsyncd initial sync');
    return await measure(src, dst, L_SINGLES, L_BURSTS, 'lsyncd', 100);
  } finally {
    await stopChild(child);
  }
}

function table(rows: [string, ...string[]][]): string {
  const w = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  return rows.map((r) => r.map((c, i) => (i === 0 ? c.padEnd(w[i]) : c.padStart(w[i]))).join('  ')).join('\n');
}

async function main(): Promise<void> {
  const base = mkdtempSync(join(tmpdir(), 'nha-bench-files-'));
  try {
    const nha = await benchNimbusHa(base);
    let lsyncd: ToolResult | { skipped: string };
    if (args.includes('--no-lsyncd')) lsyncd = { skipped: 'disabled with --no-lsyncd' };
    else {
      const bin = lsyncdBinary();
      lsyncd = typeof bin === 'string' ? await benchLsyncd(base, bin) : bin;
    }
    const version = typeof lsyncd === 'object' && 'skipped' in lsyncd ? null : (() => {
      try {
        return execFileSync('lsyncd', ['--version'], { encoding: 'utf8' }).trim().split('\n')[0];
      } catch {
        return null;
      }
    })();
    const ratio = 'skipped' in lsyncd ? null : {
      singleP50: Math.round((lsyncd.single.p50Ms / nha.single.p50Ms) * 10) / 10,
      burst100P50: Math.round((lsyncd.burst100.p50Ms / nha.burst100.p50Ms) * 10) / 10,
    };
    const result = {
      bench: 'files',
      what: 'time from a write on the primary tree until the standby tree holds the new content',
      host: { cpus: (await import('node:os')).cpus().length, node: process.version },
      nimbusHa: { settings: { batchMs: 200, maxBatchMs: 500 }, ...nha },
      lsyncd: 'skipped' in lsyncd ? lsyncd : { version, settings: 'default.rsync, default delay', ...lsyncd },
      ratio,
      target: {
        p50AtMostOneSecond: nha.single.p50Ms <= 1000 && nha.burst100.p50Ms <= 1000,
        tenTimesFasterThanLsyncd: ratio ? ratio.singleP50 >= 10 && ratio.burst100P50 >= 10 : null,
      },
    };
    console.log(JSON.stringify(result, null, 2));
    const row = (name: string, r: ToolResult | { skipped: string }): [string, ...string[]][] =>
      'skipped' in r
        ? [[name, 'skipped', r.skipped, '', '', '']]
        : [
            [name, 'single edit', String(r.single.n), r.single.p50Ms.toFixed(0), r.single.p99Ms.toFixed(0), r.single.maxMs.toFixed(0)],
            [name, 'burst of 100', String(r.burst100.n), r.burst100.p50Ms.toFixed(0), r.burst100.p99Ms.toFixed(0), r.burst100.maxMs.toFixed(0)],
          ];
    console.log(
      '\n' +
        table([['tool', 'case', 'n', 'p50 ms', 'p99 ms', 'max ms'], ...row('nimbus-ha', nha), ...row('lsyncd', lsyncd)]) +
        (ratio ? `\n\nlsyncd / nimbus-ha (p50): single ${ratio.singleP50}x, burst ${ratio.burst100P50}x` : '') +
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
