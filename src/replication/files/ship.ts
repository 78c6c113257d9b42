/**
 * Sends one set of changed paths of a tree to the receiver: deletes first (deepest first), then
 * directories (shallowest first), then small files and links inline in JSON batches, then large
 * files streamed one by one with their checksum in the signed path.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import { posix } from 'node:path';
import type { PeerTransport } from '../../ports.js';
import type { ApplyResult, BatchEntry, ManifestEntry } from './protocol.js';
import { isMissing, sha256File } from './scan.js';
import { mapLimit } from './limit.js';

export interface ShipTarget {
  transport: PeerTransport;
  /** The receiver's base URL, or a function asked before each request (the peer's paths that answer now first). */
  peerUrl: string | (() => string);
  /** Mount point of the receiver's router, e.g. "/peer/files". */
  basePath: string;
  timeoutMs: number;
  largeFileBytes: number;
  /** Upper bound of raw file bytes per JSON batch request. */
  maxBatchBytes: number;
  maxBatchEntries: number;
}

/** A path and what the primary has there now (null: it is gone, so delete it). */
export interface LocalItem {
  rel: string;
  entry: ManifestEntry | null;
}

export interface ShipResult {
  entries: number;
  bytes: number;
  quarantined: number;
  /**
   * Paths that were gone when they were read. They are not deleted here: the caller looks at them
   * again, so their removal passes the delete guard like any other.
   */
  vanished: string[];
}

const READ_WINDOW = 256;

/** How often a request in flight checks that its path still answers heartbeats. */
const PATH_CHECK_MS = 200;

/**
 * Run one request on the URL `peerUrl` names now. When it is a function (the peer's URLs, answering
 * paths first) and, while the request is in flight, another URL comes first (the heartbeats found the
 * path silent), the request is given up at once instead of waiting for its timeout on a cut path; the
 * caller retries on the new first URL.
 */
export async function onLivePath<T>(peerUrl: string | (() => string), run: (url: string, signal?: AbortSignal) => Promise<T>): Promise<T> {
  if (typeof peerUrl !== 'function') return run(peerUrl);
  const url = peerUrl();
  const ac = new AbortController();
  let timer: NodeJS.Timeout | null = null;
  const left = new Promise<never>((_, reject) => {
    timer = setInterval(() => {
      const now = peerUrl();
      if (now !== url) {
        const err = new Error(`the path to ${url} stopped answering heartbeats; continuing over ${now}`);
        ac.abort(err);
        reject(err);
      }
    }, PATH_CHECK_MS);
    timer.unref?.();
  });
  const p = run(url, ac.signal);
  p.catch(() => undefined);
  left.catch(() => undefined);
  try {
    return await Promise.race([p, left]);
  } finally {
    if (timer) clearInterval(timer);
  }
}
const depth = (rel: string) => rel.split('/').length;

/** Query-string encoding that leaves nothing for a URL parser to re-encode (the path is signed). */
export function encodeQueryValue(v: string): string {
  return encodeURIComponent(v).replace(/[!'()*]/g, (c) => '%' + c.charCodeAt(0).toString(16).toUpperCase());
}

/** Drop deletes whose parent directory is deleted too (the receiver removes the whole subtree). */
function compressDeletes(rels: string[]): string[] {
  const set = new Set(rels);
  return rels.filter((r) => {
    for (let p = posix.dirname(r); p !== '.'; p = posix.dirname(p)) if (set.has(p)) return false;
    return true;
  });
}

/** Read a small file with the stat taken from the same open file, or null when it vanished. */
async function readSmall(abs: string, maxBytes: number): Promise<{ data: Buffer; mode: number; mtimeMs: number } | 'large' | null> {
  let fh;
  try {
    fh = await open(abs, 'r');
    const st = await fh.stat();
    if (!st.isFile()) return null;
    // It grew since it was listed: stream it rather than inflate a JSON batch.
    if (st.size > maxBytes) return 'large';
    const data = await fh.readFile();
    return { data, mode: st.mode & 0o777, mtimeMs: st.mtimeMs };
  } catch (err) {
    if (isMissing(err)) return null;
    throw err;
  } finally {
    await fh?.close();
  }
}

export async function shipItems(
  t: ShipTarget,
  tree: { name: string; root: string },
  items: LocalItem[],
  onProgress: (done: number) => void = () => undefined,
): Promise<ShipResult> {
  const deletes = compressDeletes(items.filter((i) => !i.entry).map((i) => i.rel)).sort((a, b) => depth(b) - depth(a));
  const dirs = items.filter((i) => i.entry?.type === 'dir').sort((a, b) => depth(a.rel) - depth(b.rel));
  const rest = items.filter((i) => i.entry && i.entry.type !== 'dir');
  const large: { rel: string }[] = [];
  const out: ShipResult = { entries: 0, bytes: 0, quarantined: 0, vanished: [] };

  let batch: BatchEntry[] = [];
  let batchBytes = 0;
  const flush = async () => {
    if (batch.length === 0) return;
    const entries = batch;
    const res = await onLivePath(t.peerUrl, (url, signal) => t.transport.post<ApplyResult>(url, `${t.basePath}/batch`, { tree: tree.name, entries }, t.timeoutMs, signal));
    out.entries += batch.length;
    out.bytes += batchBytes;
    out.quarantined += res.quarantined ?? 0;
    onProgress(batch.length);
    batch = [];
    batchBytes = 0;
  };
  const add = async (e: BatchEntry, bytes = 0) => {
    if (batch.length > 0 && (batch.length >= t.maxBatchEntries || batchBytes + bytes > t.maxBatchBytes)) await flush();
    batch.push(e);
    batchBytes += bytes;
  };

  for (const rel of deletes) await add({ op: 'delete', path: rel });
  for (const d of dirs) if (d.entry?.type === 'dir') await add({ op: 'dir', path: d.rel, mode: d.entry.mode });
  // Read small files ahead in parallel, a window at a time so memory stays bounded by the batch size.
  const small = rest.filter((i) => !(i.entry?.type === 'file' && i.entry.size > t.largeFileBytes));
  for (const i of rest) if (i.entry?.type === 'file' && i.entry.size > t.largeFileBytes) large.push({ rel: i.rel });
  for (let w = 0; w < small.length; w += READ_WINDOW) {
    const window = small.slice(w, w + READ_WINDOW);
    const reads = await mapLimit(window, 16, (i) => (i.entry?.type === 'file' ? readSmall(posix.join(tree.root, i.rel), t.largeFileBytes) : Promise.resolve(null)));
    for (let k = 0; k < window.length; k++) {
      const i = window[k];
      const e = i.entry!;
      const f = reads[k];
      if (e.type === 'link') await add({ op: 'link', path: i.rel, target: e.target });
      else if (f === 'large') large.push({ rel: i.rel });
      else if (!f) out.vanished.push(i.rel);
      else {
        const sha256 = createHash('sha256').update(f.data).digest('hex');
        await add({ op: 'file', path: i.rel, mode: f.mode, mtimeMs: f.mtimeMs, sha256, data: f.data.toString('base64') }, f.data.length);
      }
    }
  }
  await flush();

  for (const { rel } of large) {
    const abs = posix.join(tree.root, rel);
    let fh;
    try {
      fh = await open(abs, 'r');
    } catch (err) {
      if (!isMissing(err)) throw err;
      out.vanished.push(rel);
      continue;
    }
    try {
      const st = await fh.stat();
      const sha256 = await sha256File(abs);
      const q = [
        `tree=${encodeQueryValue(tree.name)}`,
        `path=${encodeQueryValue(rel)}`,
        `sha256=${sha256}`,
        `mode=${st.mode & 0o777}`,
        `mtime=${st.mtimeMs}`,
      ].join('&');
      const body = createReadStream('', { fd: fh, autoClose: false, start: 0 });
      // putStream takes no signal: a request given up on a silent path ends when its file handle closes below.
      const res = await onLivePath(t.peerUrl, (url) => t.transport.putStream<ApplyResult>(url, `${t.basePath}/file?${q}`, body, st.size, Math.max(t.timeoutMs, 120_000)));
      out.entries++;
      out.bytes += st.size;
      out.quarantined += res.quarantined ?? 0;
      onProgress(1);
    } finally {
      await fh.close();
    }
  }
  return out;
}
