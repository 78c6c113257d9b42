/**
 * The front section of the repository bench: uploads through the write-through front (to two Cumulus
 * stand-ins at once) against direct uploads to one, added latency of a 1 MiB PUT, and the front's peak
 * RSS while streaming. The front runs in its own process with the nimbus-ha Node flags.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { dirname, join } from 'node:path';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { readFileSync } from 'node:fs';
import { S3Store } from '../../adapters/cumulus/s3-store.js';
import { NODE_FLAGS, PROCESS_ENV } from '../../src/cli/node-flags.js';
import { ACCESS, SECRET, startServer, stopServer, type ServerProc } from './servers.js';

const MiB = 1024 * 1024;

export interface FrontBenchResult {
  uploadBytes: number;
  rounds: number;
  directMBps: number;
  frontMBps: number;
  throughputRatio: number;
  putSamples: number;
  direct1MiBP50Ms: number;
  front1MiBP50Ms: number;
  addedP50Ms: number;
  frontMaxRssMiB: number;
  /**
   * CPU seconds per GiB uploaded, per process, during the large uploads: where the time goes. On a host
   * with fewer cores than busy processes the front's ratio is bounded by CPU: it runs the upload into two
   * repositories (each hashing and writing every byte) next to the client and itself.
   */
  cpuSecondsPerGiB: {
    direct: { client: number; repository: number; total: number; coresBusy: number };
    front: { client: number; front: number; local: number; peer: number; total: number; coresBusy: number };
  };
  /** Cores of this host (os.availableParallelism()). */
  cores: number;
  targets: { throughputAtLeast70pct: boolean; addedP50AtMost30ms: boolean; rssBelow150MB: boolean };
}

/** User + system CPU seconds of a process so far (Linux /proc; 0 elsewhere). */
function cpuOf(pid: number | undefined): number {
  if (pid === undefined) return 0;
  try {
    // Fields after the command name (which may hold spaces): utime and stime are the 12th and 13th.
    const rest = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return (Number(rest[11]) + Number(rest[12])) / CLK_TCK;
  } catch {
    return 0;
  }
}
const CLK_TCK = 100;
const selfCpu = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? (s[(s.length - 1) >> 1]! + s[s.length >> 1]!) / 2 : 0;
};

/** A stream of `size` bytes in 1 MiB chunks from one random buffer (no whole-object buffer). */
function stream(size: number, chunk: Buffer): Readable {
  let left = size;
  return new Readable({
    read() {
      if (left <= 0) return void this.push(null);
      const n = Math.min(left, chunk.length);
      left -= n;
      this.push(n === chunk.length ? chunk : chunk.subarray(0, n));
    },
  });
}

export async function frontBench(opts: { quick: boolean }): Promise<FrontBenchResult> {
  const uploadBytes = (opts.quick ? 16 : 64) * MiB;
  const rounds = opts.quick ? 2 : 3;
  const putSamples = opts.quick ? 10 : 30;
  const servers: ServerProc[] = [await startServer('front-a'), await startServer('front-b'), await startServer('direct')];
  const [a, b, direct] = servers as [ServerProc, ServerProc, ServerProc];
  const here = dirname(fileURLToPath(import.meta.url));
  const child = spawn(process.execPath, [...NODE_FLAGS, join(here, 'front-child.js'), a.url, b.url], { stdio: ['pipe', 'pipe', 'inherit'], env: { ...process.env, ...PROCESS_ENV } });
  const lines = createInterface({ input: child.stdout! });
  const next = () => new Promise<string>((resolve) => lines.once('line', resolve));
  const stores: S3Store[] = [];
  try {
    const { url } = JSON.parse(await next()) as { url: string };
    const mk = (endpoint: string) => {
      const s = new S3Store({ endpoint, bucket: 'Repo', accessKeyId: ACCESS, secretAccessKey: SECRET, signatureVersion: 'v2', multipart: false, maxAttempts: 1 });
      stores.push(s);
      return s;
    };
    const viaFront = mk(url);
    const toOne = mk(direct.url);
    const chunk = randomBytes(MiB);
    const upload = async (s: S3Store, key: string, size: number) => {
      const t = performance.now();
      await s.put(key, stream(size, chunk), size);
      return performance.now() - t;
    };
    // Warm-up (sockets, JIT), then alternate so neither side gets the quieter moments.
    await upload(toOne, 'warm/1', MiB);
    await upload(viaFront, 'warm/1', MiB);
    const d: number[] = [];
    const f: number[] = [];
    const pids = { a: a.child.pid, b: b.child.pid, direct: direct.child.pid, front: child.pid };
    const snap = () => ({ client: selfCpu(), a: cpuOf(pids.a), b: cpuOf(pids.b), direct: cpuOf(pids.direct), front: cpuOf(pids.front) });
    const cpu = { direct: { client: 0, repository: 0 }, front: { client: 0, front: 0, local: 0, peer: 0 } };
    for (let i = 0; i < rounds; i++) {
      let s0 = snap();
      d.push(await upload(toOne, `big/${i}.raw`, uploadBytes));
      let s1 = snap();
      cpu.direct.client += s1.client - s0.client;
      cpu.direct.repository += s1.direct - s0.direct;
      s0 = s1;
      f.push(await upload(viaFront, `big/${i}.raw`, uploadBytes));
      s1 = snap();
      cpu.front.client += s1.client - s0.client;
      cpu.front.front += s1.front - s0.front;
      cpu.front.local += s1.a - s0.a;
      cpu.front.peer += s1.b - s0.b;
    }
    child.stdin!.write('rss\n');
    const rss = JSON.parse(await next()) as { maxRssBytes: number };
    const dl: number[] = [];
    const fl: number[] = [];
    for (let i = 0; i < putSamples; i++) {
      dl.push(await upload(toOne, `small/${i}.raw`, MiB));
      fl.push(await upload(viaFront, `small/${i}.raw`, MiB));
    }
    const directMBps = uploadBytes / MiB / (median(d) / 1000);
    const frontMBps = uploadBytes / MiB / (median(f) / 1000);
    const r2 = (x: number) => Math.round(x * 100) / 100;
    const gib = (rounds * uploadBytes) / (1024 * MiB);
    const per = <T extends Record<string, number>>(o: T) => Object.fromEntries(Object.entries(o).map(([k, v]) => [k, r2(v / gib)])) as T;
    const sum = (o: Record<string, number>) => Object.values(o).reduce((x, y) => x + y, 0);
    const wall = (xs: number[]) => xs.reduce((x, y) => x + y, 0) / 1000;
    const cpuSecondsPerGiB = {
      direct: { ...per(cpu.direct), total: r2(sum(cpu.direct) / gib), coresBusy: r2(sum(cpu.direct) / wall(d)) },
      front: { ...per(cpu.front), total: r2(sum(cpu.front) / gib), coresBusy: r2(sum(cpu.front) / wall(f)) },
    };
    const addedP50Ms = median(fl) - median(dl);
    return {
      uploadBytes,
      rounds,
      directMBps: r2(directMBps),
      frontMBps: r2(frontMBps),
      throughputRatio: r2(frontMBps / directMBps),
      putSamples,
      direct1MiBP50Ms: r2(median(dl)),
      front1MiBP50Ms: r2(median(fl)),
      addedP50Ms: r2(addedP50Ms),
      frontMaxRssMiB: Math.round((rss.maxRssBytes / MiB) * 10) / 10,
      cpuSecondsPerGiB,
      cores: availableParallelism(),
      targets: { throughputAtLeast70pct: frontMBps / directMBps >= 0.7, addedP50AtMost30ms: addedP50Ms <= 30, rssBelow150MB: rss.maxRssBytes < 150e6 },
    };
  } finally {
    for (const s of stores) s.close();
    child.stdin!.end();
    await new Promise((r) => (child.exitCode !== null ? r(null) : child.once('exit', r)));
    for (const s of servers) await stopServer(s);
  }
}

/** `node dist/bench/repo/front.js [--quick]`: the front section alone. */
if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const r = await frontBench({ quick: process.argv.includes('--quick') });
  console.log(JSON.stringify({ bench: 'repo-front', ...r }));
}
