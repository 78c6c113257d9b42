/**
 * Load generators of the chaos harness. Each records only what a client was told succeeded; the checker
 * compares these records with what the nodes hold and never asks the agents what they think they hold.
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { Readable } from 'node:stream';
import { S3Store } from '../../../adapters/cumulus/s3-store.js';
import { signedV2Request } from '../../../adapters/nimbus/ec2-sign.js';
import { CUMULUS_KEY, CUMULUS_SECRET } from '../../../fixtures/cluster.js';
import type { CloudUser } from '../../../fixtures/nimbus-vm-service/new-user.js';

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
export const md5 = (b: Buffer | string) => createHash('md5').update(b).digest('hex');

export function store(url: string): S3Store {
  return new S3Store({ endpoint: url, bucket: 'Repo', accessKeyId: CUMULUS_KEY, secretAccessKey: CUMULUS_SECRET, forcePathStyle: true, maxAttempts: 1 });
}

export async function objectMd5(s: S3Store, key: string): Promise<string | null> {
  try {
    if (!(await s.head(key))) return null;
    const h = createHash('md5');
    for await (const c of await s.get(key)) h.update(c as Buffer);
    return h.digest('hex');
  } catch {
    return null;
  }
}

/** Every object of a store with its MD5 (null when the store does not answer). */
export async function listMd5(s: S3Store, prefix?: string): Promise<Map<string, string> | null> {
  try {
    const out = new Map<string, string>();
    const keys: string[] = [];
    for await (const o of s.list(prefix)) keys.push(o.key);
    for (const k of keys) {
      const m = await objectMd5(s, k);
      if (m) out.set(k, m);
    }
    return out;
  } catch {
    return null;
  }
}

export function listTree(root: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (dir: string) => {
    let names: string[];
    try {
      names = readdirSync(dir);
    } catch {
      return;
    }
    for (const name of names) {
      const p = join(dir, name);
      try {
        const st = statSync(p);
        if (st.isDirectory()) walk(p);
        else out.set(relative(root, p), md5(readFileSync(p)));
      } catch {
        /* removed meanwhile */
      }
    }
  };
  if (existsSync(root)) walk(root);
  return out;
}

/** Acknowledgement times, for the longest client-observed gap after an instant. */
export class AckTimes {
  readonly at: number[] = [];
  mark(): void {
    this.at.push(Date.now());
  }
  /** Longest wait between acknowledgements from `since` to `until` (Date.now ms), open ends counted. */
  gapBetween(since: number, until: number): number {
    let last = since;
    let worst = 0;
    for (const t of this.at) {
      if (t < since) continue;
      if (t > until) break;
      worst = Math.max(worst, t - last);
      last = t;
    }
    return Math.max(worst, until - last);
  }
}

/** Uploads small images through the repository VIP, recording key + MD5 of every acknowledged upload. */
export class Uploader {
  readonly acked = new Map<string, string>();
  readonly times = new AckTimes();
  failed = 0;
  private running = false;
  private loop: Promise<void> | null = null;
  private n = 0;
  constructor(private readonly s: S3Store, private readonly prefix: string, private readonly everyMs: number) {}
  start(): void {
    this.running = true;
    this.loop = (async () => {
      while (this.running) {
        const key = `${this.prefix}chaos-${String(++this.n).padStart(6, '0')}.img`;
        const body = randomBytes(8 * 1024);
        try {
          await this.s.put(key, Readable.from([body]), body.length);
          this.acked.set(key, md5(body));
          this.times.mark();
        } catch {
          this.failed++; // not acknowledged: may or may not exist (ambiguous), never counted as lost
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

/**
 * Writes config files into the primary's tree (as an operator on the primary would). A write counts as
 * acknowledged only when that node answered /primary 200 both before and after it.
 */
export class FileWriter {
  readonly acked = new Map<string, string>();
  ambiguous = 0;
  private running = false;
  private loop: Promise<void> | null = null;
  private n = 0;
  constructor(
    private readonly nodes: { name: 'a' | 'b'; url: string; etcDir: string }[],
    private readonly everyMs: number,
    /** Edit this many files in turn instead of writing a new file each time (a tree that does not grow). */
    private readonly editFiles = 0,
  ) {}
  private async isPrimary(url: string): Promise<boolean> {
    return fetch(`${url}/primary`, { signal: AbortSignal.timeout(300) }).then((r) => r.status === 200, () => false);
  }
  start(): void {
    this.running = true;
    this.loop = (async () => {
      while (this.running) {
        for (const n of this.nodes) {
          if (!(await this.isPrimary(n.url))) continue;
          const k = ++this.n;
          const rel = `chaos/f-${String(this.editFiles > 0 ? k % this.editFiles : k).padStart(6, '0')}.conf`;
          const content = `chaos.setting.${k}=${randomBytes(6).toString('hex')}\n`;
          try {
            mkdirSync(dirname(join(n.etcDir, rel)), { recursive: true });
            writeFileSync(join(n.etcDir, rel), content);
          } catch {
            this.ambiguous++;
            break;
          }
          if (await this.isPrimary(n.url)) this.acked.set(rel, md5(content));
          else this.ambiguous++;
          break;
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

/** A signed EC2 call (no retries: the harness measures failures). */
export async function ec2Call(endpoint: string, user: CloudUser, action: string, params: Record<string, string> = {}, timeoutMs = 3000): Promise<{ status: number; body: string }> {
  const { url, init } = signedV2Request({ endpoint, action, params, credentials: { accessKeyId: user.accessId, secretAccessKey: user.secret } });
  const res = await fetch(url, { ...init, signal: AbortSignal.timeout(timeoutMs) });
  return { status: res.status, body: await res.text() };
}

/**
 * An EC2 client through the VIP: DescribeInstances every `everyMs` (the API gap), and every few rounds
 * RunInstances of one instance (idempotent ClientToken, retried until answered) and TerminateInstances
 * of the one before. Records the instance ids RunInstances acknowledged.
 */
export class Ec2Client {
  readonly times = new AckTimes();
  readonly launched: string[] = [];
  failed = 0;
  private running = false;
  private loop: Promise<void> | null = null;
  private n = 0;
  constructor(private readonly endpoint: string, private readonly user: CloudUser, private readonly everyMs: number) {}
  start(): void {
    this.running = true;
    this.loop = (async () => {
      let round = 0;
      let token: string | null = null;
      while (this.running) {
        round++;
        try {
          if (token === null && round % 8 === 0) token = `chaos-run-${++this.n}-${randomBytes(4).toString('hex')}`;
          if (token !== null) {
            const r = await ec2Call(this.endpoint, this.user, 'RunInstances', { ImageId: 'chaos-base.img', MinCount: '1', MaxCount: '1', ClientToken: token });
            if (r.status === 200) {
              const id = /<instanceId>([^<]+)<\/instanceId>/.exec(r.body)?.[1];
              token = null;
              if (id) {
                const prev = this.launched.at(-1);
                this.launched.push(id);
                if (prev) await ec2Call(this.endpoint, this.user, 'TerminateInstances', { 'InstanceId.1': prev }).catch(() => undefined);
              }
            } else if (r.status < 500) token = null; // refused (e.g. pool exhausted): not a fault of the pair
            else this.failed++;
          }
          const d = await ec2Call(this.endpoint, this.user, 'DescribeInstances');
          if (d.status === 200) this.times.mark();
          else this.failed++;
        } catch {
          this.failed++;
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
