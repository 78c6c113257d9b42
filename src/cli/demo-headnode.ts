/**
 * The full head-node demo on embedded defaults (no root, no Docker): witness + two nodes, each with
 * embedded PostgreSQL, a Cumulus stand-in, the Nimbus-like VM service and nimbus-ha, with VIPs in front
 * of the EC2 API, the repository and the database. It creates users, imports a key pair, uploads images,
 * runs instances and edits config; kills node a's whole process tree while a writer and an uploader keep
 * going; measures the takeover; keeps working on b; restarts a (standby, catches up); fails back; and
 * verifies on a every acknowledged row, image and file.
 */
import { createHash, generateKeyPairSync, randomBytes } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { Readable } from 'node:stream';
import pg from 'pg';
import { Cluster, GapProbe, SplitBrainChecker, CUMULUS_KEY, CUMULUS_SECRET, DB_PASSWORD } from '../../fixtures/cluster.js';
import { DbWriter } from '../../fixtures/db-writer.js';
import { createUser, type CloudUser } from '../../fixtures/nimbus-vm-service/new-user.js';
import { signedV2Request } from '../../adapters/nimbus/ec2-sign.js';
import { S3Store } from '../../adapters/cumulus/s3-store.js';
import { percentile } from '../util/stats.js';
import { failoverFigures, stayUp } from './demo.js';

export interface HeadnodeDemoOptions {
  once?: boolean;
  json?: boolean;
  dir?: string;
  sync?: 'sync' | 'async';
  /** Repository mode (default sync: uploads through the repository VIP go through the write-through front). */
  repoMode?: 'sync' | 'async';
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const md5 = (b: Buffer) => createHash('md5').update(b).digest('hex');

async function until(what: string, fn: () => Promise<unknown>, timeoutMs: number, everyMs = 100): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    if (await Promise.resolve(fn()).catch(() => false)) return;
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

function store(url: string): S3Store {
  // Signature version 2, as Cumulus clients sign (the repository front verifies v2 only).
  return new S3Store({ endpoint: url, bucket: 'Repo', accessKeyId: CUMULUS_KEY, secretAccessKey: CUMULUS_SECRET, forcePathStyle: true, signatureVersion: 'v2', maxAttempts: 1 });
}

async function objectMd5(s: S3Store, key: string): Promise<string | null> {
  try {
    if (!(await s.head(key))) return null;
    const h = createHash('md5');
    for await (const c of await s.get(key)) h.update(c as Buffer);
    return h.digest('hex');
  } catch {
    return null;
  }
}

/** A signed EC2 call through the VIP; like any client, it retries a few times while the VIP moves. */
async function ec2(endpoint: string, user: CloudUser, action: string, params: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  let last: unknown;
  for (let attempt = 0; attempt < 10; attempt++) {
    try {
      const { url, init } = signedV2Request({ endpoint, action, params, credentials: { accessKeyId: user.accessId, secretAccessKey: user.secret } });
      const res = await fetch(url, { ...init, signal: AbortSignal.timeout(5000) });
      const body = await res.text();
      if (res.status < 500) return { status: res.status, body };
      last = new Error(`HTTP ${res.status}: ${body.slice(0, 200)}`);
    } catch (err) {
      last = err;
    }
    await sleep(500);
  }
  throw new Error(`${action} through ${endpoint} kept failing: ${(last as Error).message}`);
}

function listTree(root: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (dir: string) => {
    for (const name of readdirSync(dir)) {
      const p = join(dir, name);
      const st = statSync(p);
      if (st.isDirectory()) walk(p);
      else out.set(relative(root, p), md5(readFileSync(p)));
    }
  };
  if (existsSync(root)) walk(root);
  return out;
}

/** Uploads a small image through the repository VIP every `everyMs`, recording acknowledged uploads. */
class Uploader {
  readonly acked = new Map<string, string>();
  private running = false;
  private loop: Promise<void> | null = null;
  private n = 0;
  constructor(
    private readonly s: S3Store,
    private readonly prefix: string,
    private readonly everyMs: number,
  ) {}
  start(): void {
    this.running = true;
    this.loop = (async () => {
      while (this.running) {
        const key = `${this.prefix}upload-${String(++this.n).padStart(4, '0')}.img`;
        const body = randomBytes(16 * 1024);
        try {
          await this.s.put(key, Readable.from([body]), body.length);
          this.acked.set(key, md5(body));
        } catch {
          /* the VIP is moving: not acknowledged, not counted */
        }
        await sleep(this.everyMs);
      }
    })();
  }
  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
  }
}

export async function runHeadnodeDemo(opts: HeadnodeDemoOptions): Promise<void> {
  const say = (msg: string) => {
    if (!opts.json) console.log(msg);
  };
  const mode = opts.sync ?? 'sync';
  const cluster = new Cluster({ dir: opts.dir, db: { sync: mode }, repo: true, repoMode: opts.repoMode ?? 'sync', nimbus: true });
  const cleanup = cluster.stopOnSignals();
  const t = { start: Date.now() };
  try {
    say('nimbus-ha demo: a Nimbus-like head node pair on loopback (embedded PostgreSQL, Cumulus stand-in, VM service)');
    await cluster.start();
    say(`  working directory ${cluster.dir}`);
    await cluster.waitFor((a, b) => (a?.role === 'primary' && b?.role === 'standby') || (b?.role === 'primary' && a?.role === 'standby'), 90_000, 'a primary and a standby');
    if ((await cluster.primary()) === 'b') {
      // b came up first and took the role: hand it to a, the preferred node, so the story reads a -> b -> a.
      await until('a streaming the database', async () => (await cluster.status('a'))?.replication?.db?.streaming === true, 120_000);
      await until('a caught up', async () => (await cluster.status('b'))?.peers?.[0]?.caught_up === true, 60_000);
      await cluster.admin('b', '/admin/switchover', { to: 'a' });
      await cluster.waitFor((a, b) => a?.role === 'primary' && b?.role === 'standby', 60_000, 'a primary after the initial switchover');
    }
    await until('b streaming the database', async () => (await cluster.status('b'))?.replication?.db?.streaming === true, 120_000);
    await until('the EC2 API answering through the VIP', async () => (await fetch(cluster.vipUrl, { signal: AbortSignal.timeout(1000) })).status < 500, 60_000);
    const epoch0 = (await cluster.status('a'))!.epoch as number;
    say(`1. head nodes up: a is primary (epoch ${epoch0}), b standby streaming; EC2 ${cluster.vipUrl}  S3 ${cluster.repoUrl}  SQL 127.0.0.1:${cluster.dbVipPort}`);

    // 2. Cloud work on a: users, key pair, images, instances, a config edit.
    const pool = new pg.Pool({ connectionString: cluster.dbUrl, max: 2 });
    pool.on('error', () => undefined); // an idle session the server dropped; the next query gets a fresh one
    const alice = await createUser(pool, 'alice');
    const bob = await createUser(pool, 'bob');
    await pool.end();
    const kp = await ec2(cluster.vipUrl, alice, 'ImportKeyPair', { KeyName: 'alice-key', PublicKeyMaterial: Buffer.from(demoSshKey('alice@demo')).toString('base64') });
    const repoVip = store(cluster.repoUrl);
    const repoA = store(`http://127.0.0.1:${cluster.nodes.a.cumulusPort}`);
    const repoB = store(`http://127.0.0.1:${cluster.nodes.b.cumulusPort}`);
    const images = new Map<string, string>();
    const imageReplMs: number[] = [];
    for (const [owner, name, size] of [[alice.canonicalId, 'debian-12.img', 2 * 1024 * 1024], [alice.canonicalId, 'ubuntu-24.img', 1024 * 1024], ['common', 'base.img', 512 * 1024]] as const) {
      const key = `VMS/${owner}/${name}`;
      const body = randomBytes(size);
      const t0 = performance.now();
      await repoVip.put(key, Readable.from([body]), body.length);
      images.set(key, md5(body));
      await until(`${key} on b`, async () => (await objectMd5(repoB, key)) === md5(body), 30_000, 20);
      imageReplMs.push(Math.round(performance.now() - t0));
    }
    const run = await ec2(cluster.vipUrl, alice, 'RunInstances', { ImageId: 'debian-12.img', MinCount: '2', MaxCount: '2', KeyName: 'alice-key', ClientToken: 'demo-run-1' });
    const instanceIds = [...run.body.matchAll(/<instanceId>([^<]+)<\/instanceId>/g)].map((m) => m[1]);
    const fileReplMs: number[] = [];
    // Every count of config files in the steps, the summary and the JSON comes from these two lists.
    const files: ChangedFiles = { onA: [], onB: [] };
    for (let i = 1; i <= 5; i++) {
      const rel = i === 1 ? 'network-pools/private' : `demo-${i}.conf`;
      const content = i === 1 ? '# DNS server\n127.0.0.53\npriv1 192.168.77.11 192.168.77.1 192.168.77.255 255.255.255.0\n' : `setting.${i}=value-${i}\n`;
      const t0 = performance.now();
      writeFileSync(join(cluster.nodes.a.etcDir, rel), content);
      files.onA.push(rel);
      await until(`${rel} on b`, async () => existsSync(join(cluster.nodes.b.etcDir, rel)) && readFileSync(join(cluster.nodes.b.etcDir, rel), 'utf8') === content, 10_000, 10);
      fileReplMs.push(Math.round(performance.now() - t0));
    }
    say(`2. users alice and bob, key pair ${kp.status === 200 ? 'imported' : `FAILED (${kp.status})`}, ${images.size} images uploaded (on b after p50 ${percentile(imageReplMs, 50)} ms), ${instanceIds.length} instances started, ${files.onA.length} config files edited on a (on b after p50 ${percentile(fileReplMs, 50)} ms)`);

    // 3. Load, then kill -9 node a's whole process tree.
    const writer = new DbWriter(cluster.dbUrl, { everyMs: 5 });
    await writer.prepare();
    writer.start();
    const uploader = new Uploader(repoVip, `VMS/${bob.canonicalId}/`, 150);
    uploader.start();
    const probe = new GapProbe(cluster.vipUrl, 10, 200_000, (status) => status < 500);
    const checker = new SplitBrainChecker([cluster.nodes.a.url, cluster.nodes.b.url], 10);
    probe.start();
    checker.start();
    const lagSamples: number[] = [];
    const lagTimer = setInterval(() => {
      void cluster.status('b').then((s) => {
        const l = s?.replication?.db?.lag_ms;
        if (typeof l === 'number') lagSamples.push(l);
      });
    }, 200);
    await sleep(2000);
    say('3. writer (SQL through the VIP) and uploader (S3 through the VIP) running; kill -9 every process of node a');
    const killAt = performance.now();
    const rowsBeforeKill = writer.acked.length;
    cluster.kill('a', true);
    cluster.killDb('a');
    const vmPid = Number(readFileSync(join(cluster.nodes.a.dataDir, 'vm-service.pid'), 'utf8').trim().split(/\s/)[0]);
    try {
      process.kill(-vmPid, 'SIGKILL');
    } catch {
      try {
        process.kill(vmPid, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }
    await cluster.waitFor((_a, b) => b?.role === 'primary', 30_000, 'b to take over');
    await probe.answeredAfter(performance.now(), 30_000); // an answer from b, not one racing the kill
    await sleep(300);
    const failoverGap = probe.gapAfter(killAt);
    const failEv = (await cluster.events('b', 'failover')).at(-1);
    const epoch1 = (await cluster.status('b'))!.epoch as number;
    say(`   b took over at epoch ${epoch1}: EC2 clients saw ${failoverGap} ms without an answer (detection ${failEv?.details?.detect_ms ?? '?'} ms)`);

    // 4. Keep working on b.
    await until('writes continue on b', async () => writer.acked.length > rowsBeforeKill + 50, 30_000);
    const run2 = await ec2(cluster.vipUrl, alice, 'RunInstances', { ImageId: 'ubuntu-24.img', MinCount: '1', MaxCount: '1' });
    const desc = await ec2(cluster.vipUrl, alice, 'DescribeInstances');
    const seenOnB = instanceIds.every((id) => desc.body.includes(id));
    writeFileSync(join(cluster.nodes.b.etcDir, 'edited-on-b.conf'), 'written while a was down\n');
    files.onB.push('edited-on-b.conf');
    await sleep(1500);
    say(`4. working on b: RunInstances ${run2.status === 200 ? 'ok' : `failed (${run2.status})`}, instances started on a ${seenOnB ? 'all visible' : 'NOT all visible'} on b, ${writer.acked.length - rowsBeforeKill} more rows, ${images.size + uploader.acked.size} images uploaded so far, ${files.onB.length} config file edited on b`);

    // 5. Restart a: it returns as standby and catches up on all three data paths.
    cluster.startCumulus('a');
    cluster.startNode('a');
    await cluster.waitFor((a, b) => a?.role === 'standby' && b?.role === 'primary', 60_000, 'a back as standby');
    await until('a streaming from b', async () => (await cluster.status('a'))?.replication?.db?.streaming === true, 180_000, 250);
    await writer.stop();
    await uploader.stop();
    clearInterval(lagTimer);
    await until('a caught up on database, repository and files', async () => (await cluster.status('b'))?.peers?.[0]?.caught_up === true, 120_000, 250);
    const rejoin = (await cluster.events('a', 'db.rejoined')).at(-1) ?? (await cluster.events('a', 'db.cloned')).at(-1);
    say(`5. a restarted: standby of b again, database ${rejoin?.details?.path ?? 'cloned'}, repository and files caught up`);

    // Data checks before fail-back: what did the failover keep?
    const lostRowsAtFailover = (await writer.missing(`postgres://postgres:${DB_PASSWORD}@127.0.0.1:${cluster.nodes.b.pgPort}/postgres`)).length;
    let imagesMissingOnB = 0;
    let imagesMismatched = 0;
    for (const [key, sum] of [...images, ...uploader.acked]) {
      const got = await objectMd5(repoB, key);
      if (got === null) imagesMissingOnB++;
      else if (got !== sum) imagesMismatched++;
    }
    const filesA = listTree(cluster.nodes.a.etcDir);
    const filesB = listTree(cluster.nodes.b.etcDir);
    const changedFiles = [...files.onA, ...files.onB];
    const filesMissingOnB = files.onA.filter((f) => !filesB.has(f)).length;

    // 6. Fail back with reverse sync.
    const fbProbe = new GapProbe(cluster.vipUrl, 10, 200_000, (status) => status < 500);
    fbProbe.start();
    await sleep(500);
    const fbAt = performance.now();
    const fb = await cluster.admin('b', '/admin/failback');
    await cluster.waitFor((a, b) => a?.role === 'primary' && b?.role === 'standby', 60_000, 'fail-back to a');
    // b answers until the handover starts (after the reverse sync): wait for an answer from a.
    await fbProbe.answeredAfter(performance.now(), 30_000);
    await sleep(300);
    fbProbe.stop();
    probe.stop();
    checker.stop();
    const failbackGap = fbProbe.gapAfter(fbAt);
    const epoch2 = (await cluster.status('a'))!.epoch as number;
    say(`6. fail-back (request ${fb.status === 202 ? 'accepted' : fb.status}): a is primary again at epoch ${epoch2}; EC2 clients saw ${failbackGap} ms without an answer`);

    // 7. Verify on a: every acknowledged row, image and file.
    const lostRows = (await writer.missing(`postgres://postgres:${DB_PASSWORD}@127.0.0.1:${cluster.nodes.a.pgPort}/postgres`)).length;
    // Images a took before it died but b never received are diverged data: moved aside on a (quarantine),
    // not deleted. They count as preserved, not lost, and are reported.
    const quarantine = new Map<string, string>();
    for await (const o of repoA.list('nha-quarantine/')) quarantine.set(o.key.split('/').slice(2).join('/'), o.key);
    let lostImages = 0;
    let quarantinedImages = 0;
    for (const [key, sum] of [...images, ...uploader.acked]) {
      if ((await objectMd5(repoA, key)) === sum) continue;
      const q = quarantine.get(key);
      if (q && (await objectMd5(repoA, q)) === sum) quarantinedImages++;
      else lostImages++;
    }
    const filesNowA = listTree(cluster.nodes.a.etcDir);
    // Lost: a file this run changed whose content on a differs from b's; the rest of the tree (files
    // that were there before the demo) must be identical too and is counted apart.
    let lostFiles = 0;
    for (const f of changedFiles) if (filesB.get(f) === undefined || filesNowA.get(f) !== filesB.get(f)) lostFiles++;
    let treeDiffers = 0;
    for (const [f, sum] of filesB) if (filesNowA.get(f) !== sum) treeDiffers++;
    const descA = await ec2(cluster.vipUrl, alice, 'DescribeInstances');
    const instancesOnA = instanceIds.every((id) => descA.body.includes(id));
    const quarantined = (await cluster.events('a')).filter((e) => e.type === 'files_quarantined' || e.type === 'repo_quarantined').length;
    say(`7. verified on a: ${writer.acked.length} acknowledged rows (${lostRows} missing), ${images.size + uploader.acked.size} images by checksum (${lostImages} lost, ${quarantinedImages} moved aside as diverged), ${changedFiles.length} changed config files (${lostFiles} missing or different; the whole tree, ${filesB.size} files, ${treeDiffers === 0 ? 'identical on a and b' : `${treeDiffers} differ`}), instances ${instancesOnA ? 'present' : 'MISSING'}`);

    const report = {
      nodes: ['a', 'b'],
      urls: { ec2: cluster.vipUrl, s3: cluster.repoUrl, sql: cluster.dbUrl.replace(DB_PASSWORD, '***') },
      failover: failoverFigures('a', 'b', failoverGap, failEv, epoch0, epoch1),
      switchover: { kind: 'failback', client_gap_ms: failbackGap, epoch_after: epoch2 },
      split_brain_observed: checker.observed > 0,
      db: { mode, acked: writer.acked.length, lost: lostRowsAtFailover, lag_ms_p99: percentile(lagSamples, 99), rejoin: rejoin?.details?.path ?? 'clone' },
      images: {
        mode: opts.repoMode ?? 'sync',
        uploaded: images.size + uploader.acked.size,
        missing_on_standby: imagesMissingOnB,
        mismatched: imagesMismatched,
        replication_ms_p50: percentile(imageReplMs, 50),
        quarantined_on_a: quarantinedImages,
      },
      files: {
        changed: changedFiles.length,
        changed_on_a: files.onA.length,
        changed_on_b: files.onB.length,
        missing_on_standby: filesMissingOnB,
        replication_ms_p50: percentile(fileReplMs, 50),
        tree: filesB.size,
        tree_differs: treeDiffers,
        on_a_before_failback: filesA.size,
      },
      cloud: { users: 2, key_pair_imported: kp.status === 200, instances_started: instanceIds.length, instances_survived: instancesOnA },
      failback: { client_gap_ms: failbackGap, lost_rows: lostRows, lost_images: lostImages, lost_files: lostFiles, quarantine_events: quarantined },
      duration_s: Math.round((Date.now() - t.start) / 1000),
    };
    if (opts.json) console.log(JSON.stringify(report));
    else {
      console.log('\nsummary');
      console.log(`  failover (kill -9 of node a)   ${failoverGap} ms client gap, epoch ${epoch0} -> ${epoch1}, split brain ${report.split_brain_observed ? 'OBSERVED' : 'never'}`);
      console.log(`  ${`database (${mode})`.padEnd(31)}${writer.acked.length} rows acknowledged, ${lostRowsAtFailover} lost at failover, ${lostRows} missing after fail-back`);
      console.log(`  images                         ${report.images.uploaded} uploaded, ${imagesMissingOnB} not yet on b at the crash (kept aside on a: ${quarantinedImages}), ${lostImages} lost`);
      console.log(`  config files                   ${changedFiles.length} changed (${files.onA.length} on a, ${files.onB.length} on b), replicated in p50 ${report.files.replication_ms_p50} ms, ${lostFiles} missing after fail-back`);
      console.log(`  fail-back                      ${failbackGap} ms client gap, a primary again at epoch ${epoch2}`);
    }
    if (opts.once) return;
    await stayUp(
      cluster,
      [
        `  EC2 API (VIP)     ${cluster.vipUrl}   user alice: access id ${alice.accessId} secret ${alice.secret}`,
        `  Cumulus S3 (VIP)  ${cluster.repoUrl}   bucket Repo, key ${CUMULUS_KEY} secret ${CUMULUS_SECRET}`,
        `                    as Cumulus: signature v2 only, one PUT per object (no multipart); the AWS CLI signs v4, so point it`,
        `                    at node a's Cumulus, http://127.0.0.1:${cluster.nodes.a.cumulusPort}, after aws configure set default.s3.multipart_threshold 5GB`,
        `  PostgreSQL (VIP)  ${cluster.dbUrl}`,
      ],
      {
        what: 'the witness, and for nodes a and b the sidecar, PostgreSQL, the Cumulus stand-in, the VM service and the path proxies',
        dir: opts.dir,
        cleanup,
        vipOk: (status) => status < 500,
        extraPids: () => detachedPids(cluster),
      },
    );
  } finally {
    if (opts.once) await cleanup();
  }
}

/** The config files the demo changes: on a before the kill, on b while a is down. */
interface ChangedFiles {
  onA: string[];
  onB: string[];
}

/**
 * Processes of the stack that are no children of the demo, from their PID files: the VM services (they
 * outlive their sidecars on purpose) and the PostgreSQL postmasters (daemonized by pg_ctl).
 */
function detachedPids(cluster: Cluster): number[] {
  const out: number[] = [];
  for (const n of ['a', 'b'] as const) {
    for (const file of ['vm-service.pid', join('pg', 'postmaster.pid')]) {
      try {
        const pid = Number(readFileSync(join(cluster.nodes[n].dataDir, file), 'utf8').trim().split(/\s/)[0]);
        if (pid > 0) out.push(pid);
      } catch {
        /* not started */
      }
    }
  }
  return out;
}

/** A fresh ED25519 public key in OpenSSH form (the VM service checks imported keys as EC2 does). */
function demoSshKey(comment: string): string {
  const raw = Buffer.from(generateKeyPairSync('ed25519').publicKey.export({ format: 'jwk' }).x ?? '', 'base64url');
  const str = (b: Buffer) => Buffer.concat([u32(b.length), b]);
  return `ssh-ed25519 ${Buffer.concat([str(Buffer.from('ssh-ed25519')), str(raw)]).toString('base64')} ${comment}`;
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n, 0);
  return b;
}
