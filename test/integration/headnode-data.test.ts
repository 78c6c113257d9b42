import { createHash } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_TOKEN, Cluster, CUMULUS_KEY, CUMULUS_SECRET } from '../../fixtures/cluster.js';
import { S3Store } from '../../adapters/cumulus/s3-store.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until<T>(what: string, fn: () => Promise<T | null | undefined | false>, timeoutMs = 15_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn().catch(() => null);
    if (v) return v as T;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

function store(port: number): S3Store {
  return new S3Store({ endpoint: `http://127.0.0.1:${port}`, bucket: 'Repo', accessKeyId: CUMULUS_KEY, secretAccessKey: CUMULUS_SECRET, forcePathStyle: true });
}

async function put(s: S3Store, key: string, body: Buffer): Promise<void> {
  await s.put(key, Readable.from([body]), body.length);
}

async function md5Of(s: S3Store, key: string): Promise<string | null> {
  const head = await s.head(key);
  if (!head) return null;
  const h = createHash('md5');
  for await (const c of await s.get(key)) h.update(c as Buffer);
  return h.digest('hex');
}

describe('head-node data paths through the agent: repository and config files', () => {
  let c: Cluster;
  let sa: S3Store;
  let sb: S3Store;

  beforeAll(async () => {
    c = new Cluster({ repo: true, files: true });
    await c.start();
    await c.waitFor((a, b) => a?.role === 'primary' && b?.role === 'standby', 30_000, 'a primary');
    sa = store(c.nodes.a.cumulusPort);
    sb = store(c.nodes.b.cumulusPort);
  });
  afterAll(async () => {
    await c?.stop();
  });

  it('an image uploaded to the primary repository and a config edit reach the standby', async () => {
    const img = Buffer.alloc(300_000, 7);
    await put(sa, 'VMS/common/ubuntu.img', img);
    writeFileSync(join(c.nodes.a.etcDir, 'nimbus.conf'), 'port=8444\n');
    const want = createHash('md5').update(img).digest('hex');
    await until('image on b', async () => (await md5Of(sb, 'VMS/common/ubuntu.img')) === want);
    await until('config file on b', async () => existsSync(join(c.nodes.b.etcDir, 'nimbus.conf')) && readFileSync(join(c.nodes.b.etcDir, 'nimbus.conf'), 'utf8') === 'port=8444\n');
    const st = (await c.status('b'))!;
    expect(st.replication.repo.objectsBehind).toBe(0);
    // The fixture sets repo.watchDir: a's change hint reaches b in heartbeats and b skips idle listings.
    const repoB = await until('b skips idle passes on a\'s change hint', async () => {
      const r = (await c.status('b'))!.replication.repo;
      return r.passesSkipped > 0 && r.hint.source?.ok ? r : null;
    });
    expect(repoB.hint.source.instance).toBe((await c.status('a'))!.replication.repo.changeHint.instance);
  });

  it('a file written on the standby is not overwritten by a stale peer: the receiver refuses writes on the primary', async () => {
    const res = await fetch(`${c.nodes.a.url}/peer/files/batch`, { method: 'POST', body: '{}', headers: { 'content-type': 'application/json' } });
    expect(res.status).toBe(401);
  });

  it('switchover moves the role to b only when b is caught up; then data flows b -> a', async () => {
    const sw = await c.admin('a', '/admin/switchover', { to: 'b' });
    expect(sw.status).toBe(202);
    await c.waitFor((a, b) => a?.role === 'standby' && b?.role === 'primary', 30_000, 'b primary');
    await put(sb, 'VMS/u1/new.img', Buffer.from('written on b'));
    writeFileSync(join(c.nodes.b.etcDir, 'network-pools'), 'public 10.0.0.0/24\n');
    await until('image back on a', async () => (await sa.head('VMS/u1/new.img')) !== null);
    await until('file back on a', async () => existsSync(join(c.nodes.a.etcDir, 'network-pools')));
    // Roles swapped: b's watcher runs now, a's stopped, and a follows b's hint.
    await until('a uses b\'s change hint', async () => {
      const [a, b] = [(await c.status('a'))!.replication.repo, (await c.status('b'))!.replication.repo];
      return a.hint.source?.ok && a.hint.source.instance === b.changeHint.instance && b.changeHint.ok && a.changeHint.ok === false && a.passesSkipped > 0;
    });
  });

  it('failback is refused while the preferred node lags, then succeeds with nothing lost', async () => {
    // Stop a's repository: a cannot be caught up.
    c.nodes.a.cumulus?.kill('SIGKILL');
    c.nodes.a.cumulus = null;
    await put(sb, 'VMS/u1/late.img', Buffer.from('late image'));
    await until('a reports not caught up', async () => (await c.status('b'))!.peers[0].caught_up === false);
    const refused = await c.admin('b', '/admin/failback');
    // Refused at once (409) when the decision cycle ran before the answer, or queued (202) and refused then.
    expect([202, 409]).toContain(refused.status);
    const r1 = refused.status === 409 ? refused.data : await until('failback refused', async () => {
      const res = await fetch(`${c.nodes.b.url}/admin/requests/${refused.data.id}`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
      const body = await res.json();
      return body.state === 'refused' ? body : null;
    });
    expect(r1.message).toMatch(/not fully caught up/);
    expect((await c.status('b'))!.role).toBe('primary');
    // Repair: restart a's repository; it catches up; fail back.
    c.startCumulus('a');
    await until('a caught up', async () => (await c.status('b'))!.peers[0].caught_up === true, 30_000);
    const ok = await c.admin('b', '/admin/failback');
    expect(ok.status).toBe(202);
    await c.waitFor((a, b) => a?.role === 'primary' && b?.role === 'standby', 30_000, 'a primary after failback');
    for (const key of ['VMS/common/ubuntu.img', 'VMS/u1/new.img', 'VMS/u1/late.img']) expect(await sa.head(key)).not.toBeNull();
    expect(readdirSync(c.nodes.a.etcDir).sort()).toEqual(['network-pools', 'nimbus.conf']);
    const ev = (await c.events('a', 'failback')).at(-1);
    expect(ev?.details?.kind).toBe('failback');
  });
});
