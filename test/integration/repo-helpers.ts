/**
 * Helpers for the repository sync integration tests: fresh s3rver instances on loopback in temp dirs,
 * stores on them, and small object utilities. Not a test file itself.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { createHash, randomBytes } from 'node:crypto';
import { startCumulus, type CumulusHandle } from '../../fixtures/cumulus/server.js';
import { S3Store, type S3StoreOptions } from '../../adapters/cumulus/s3-store.js';
import type { ObjectInfo, ObjectStore } from '../../src/ports.js';

export const ACCESS = 'repo-test-key';
export const SECRET = 'repo-test-secret';
export const MiB = 1024 * 1024;

export interface Repo {
  cumulus: CumulusHandle;
  /** The s3rver data directory (what repo.watchDir points at). */
  dir: string;
  store: S3Store;
  storeWith(extra: Partial<S3StoreOptions>): S3Store;
}

export class RepoLab {
  private readonly cleanups: Array<() => Promise<void> | void> = [];

  async repo(extra: Partial<S3StoreOptions> = {}): Promise<Repo> {
    const dir = await mkdtemp(join(tmpdir(), 'nha-repo-'));
    // multipart: these tests sync to a generic S3 server; stores given multipart: false are Cumulus's path.
    const cumulus = await startCumulus({ dir, accessKeyId: ACCESS, secretAccessKey: SECRET, multipart: true });
    this.cleanups.push(async () => {
      await cumulus.close();
      await rm(dir, { recursive: true, force: true });
    });
    const storeWith = (more: Partial<S3StoreOptions>) => {
      const s = new S3Store({ endpoint: cumulus.url, bucket: 'Repo', accessKeyId: ACCESS, secretAccessKey: SECRET, partSize: 5 * MiB, multipartThreshold: 5 * MiB, ...extra, ...more });
      this.cleanups.push(() => s.close());
      return s;
    };
    return { cumulus, dir, store: storeWith({}), storeWith };
  }

  async close(): Promise<void> {
    for (const c of this.cleanups.reverse()) await c();
    this.cleanups.length = 0;
  }
}

export async function putBytes(store: ObjectStore, key: string, data: Buffer): Promise<void> {
  // Several chunks so the store really streams.
  const chunks: Buffer[] = [];
  for (let i = 0; i < data.length; i += 256 * 1024) chunks.push(data.subarray(i, i + 256 * 1024));
  await store.put(key, Readable.from(chunks.length ? chunks : [Buffer.alloc(0)]), data.length);
}

export async function readBytes(store: ObjectStore, key: string): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of await store.get(key)) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

export async function listing(store: ObjectStore): Promise<Map<string, ObjectInfo>> {
  const m = new Map<string, ObjectInfo>();
  for await (const o of store.list()) m.set(o.key, o);
  return m;
}

export const md5 = (b: Buffer) => createHash('md5').update(b).digest('hex');

/** Fill a store with `n` small objects (keys img/NNN.qcow2) of 1–20 KiB; returns their contents. */
export async function fillSmall(store: ObjectStore, n: number, prefix = 'img/'): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  for (let i = 0; i < n; i++) {
    const b = randomBytes(1024 + ((i * 7919) % 20) * 1024);
    const key = `${prefix}${String(i).padStart(3, '0')}.qcow2`;
    await putBytes(store, key, b);
    out.set(key, b);
  }
  return out;
}

/** Assert-friendly snapshot: key → md5 of content. */
export async function contentSnapshot(store: ObjectStore): Promise<Record<string, string>> {
  const snap: Record<string, string> = {};
  for (const key of [...(await listing(store)).keys()].sort()) snap[key] = md5(await readBytes(store, key));
  return snap;
}

/** `store` with some calls replaced (to count, observe or break them); every other call goes straight through. */
export function wrapStore(store: ObjectStore, overrides: Partial<ObjectStore>): ObjectStore {
  return {
    describe: () => store.describe(),
    list: (prefix) => store.list(prefix),
    head: (k) => store.head(k),
    get: (k) => store.get(k),
    put: (k, b, s, m, o) => store.put(k, b, s, m, o),
    delete: (k) => store.delete(k),
    ...overrides,
  };
}
