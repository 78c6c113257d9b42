/**
 * Shared pieces of the VIP failover benchmark: a tiny HTTP service per node (answers its node name),
 * a client that polls the VIP every few ms from its own namespace, and the gap computation.
 * All traffic stays inside the benchmark's own network namespaces.
 */
import type { ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import type { Topology } from '../../test/helpers/netns.js';

export const SERVICE_PORT = 8080;

/** Monotonic milliseconds shared by every process on the machine (CLOCK_MONOTONIC). */
export function monoMs(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}

const SERVICE_JS = `
const name = process.argv[1];
require('http').createServer((q, s) => { s.setHeader('connection', 'close'); s.end(name); })
  .listen(${SERVICE_PORT}, '0.0.0.0');
`;

/** Starts the demo service on a node (listening on all addresses, so it answers on the VIP when held). */
export function startService(topo: Topology, node: string): ChildProcess {
  return topo.spawn(node, process.execPath, ['-e', SERVICE_JS, node], { stdio: 'ignore' });
}

const CLIENT_JS = `
const http = require('http');
const [vip, port, everyMs, maxMs] = process.argv.slice(1);
const mono = () => Number(process.hrtime.bigint()) / 1e6;
const end = mono() + Number(maxMs);
let inflight = 0;
function poll() {
  if (mono() > end) process.exit(0);
  setTimeout(poll, Number(everyMs));
  if (inflight >= 20) return;
  inflight++;
  const req = http.get({ host: vip, port: Number(port), path: '/', agent: false, timeout: 250 }, (res) => {
    let body = '';
    res.on('data', (d) => (body += d));
    res.on('end', () => { inflight--; process.stdout.write(JSON.stringify({ t: mono(), ok: res.statusCode === 200, node: body }) + '\\n'); });
  });
  req.on('timeout', () => req.destroy(new Error('timeout')));
  req.on('error', () => { inflight--; process.stdout.write(JSON.stringify({ t: mono(), ok: false }) + '\\n'); });
}
poll();
`;

export interface Sample {
  t: number;
  /** A 200 answer (a balancer's own 503 while no backend is up is not an answer of the service). */
  ok: boolean;
  node?: string;
}

/** A running poller; `samples` grows as answers arrive. */
export interface Poller {
  samples: Sample[];
  child: ChildProcess;
}

/** Polls http://VIP:SERVICE_PORT/ every `everyMs` from `node`, for at most `maxMs` (bounded run). */
export function startPoller(topo: Topology, node: string, vip: string, everyMs: number, maxMs: number): Poller {
  const child = topo.spawn(node, process.execPath, ['-e', CLIENT_JS, vip, String(SERVICE_PORT), String(everyMs), String(maxMs)]);
  const samples: Sample[] = [];
  if (child.stdout) {
    createInterface({ input: child.stdout }).on('line', (line) => {
      try {
        samples.push(JSON.parse(line) as Sample);
      } catch {
        /* partial line at exit */
      }
    });
  }
  return { samples, child };
}

/**
 * Client-observed outage of one crash: from the last good answer before the kill to the first good
 * answer from another node after it. null when no other node answered within the wait.
 */
export function gapAfter(samples: readonly Sample[], killAt: number, oldNode: string): number | null {
  let lastBefore: number | null = null;
  for (const s of samples) if (s.ok && s.t <= killAt) lastBefore = s.t;
  const firstAfter = samples.find((s) => s.ok && s.t > killAt && s.node !== oldNode);
  if (lastBefore === null || !firstAfter) return null;
  return firstAfter.t - lastBefore;
}

/** Which node answered the last `n` good samples, when they all agree (steady state), else null. */
export function steadyHolder(samples: readonly Sample[], sinceMs: number): string | null {
  const recent = samples.filter((s) => s.t >= monoMs() - sinceMs);
  if (recent.length < 5 || recent.some((s) => !s.ok)) return null;
  const nodes = new Set(recent.map((s) => s.node));
  return nodes.size === 1 ? (recent[0].node ?? null) : null;
}

export async function waitFor<T>(what: string, timeoutMs: number, fn: () => Promise<T | null> | T | null): Promise<T> {
  const deadline = monoMs() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== null) return v;
    if (monoMs() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Nearest-rank percentile (p in 0..100) of an ascending list. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))];
}

export interface GapSummary {
  n: number;
  minMs: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  meanMs: number;
}

/** Summary statistics of a list of gaps, in ms (p99 of a handful of cycles is close to the max). */
export function summarize(gaps: readonly number[]): GapSummary {
  const sorted = [...gaps].sort((a, b) => a - b);
  const n = sorted.length;
  if (n === 0) return { n: 0, minMs: NaN, p50Ms: NaN, p99Ms: NaN, maxMs: NaN, meanMs: NaN };
  const round = (x: number): number => Math.round(x * 10) / 10;
  return {
    n,
    minMs: round(sorted[0]),
    p50Ms: round(percentile(sorted, 50)),
    p99Ms: round(percentile(sorted, 99)),
    maxMs: round(sorted[n - 1]),
    meanMs: round(sorted.reduce((a, b) => a + b, 0) / n),
  };
}
