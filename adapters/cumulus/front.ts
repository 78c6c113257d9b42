/**
 * The write-through S3 front of `repo.mode: sync`, on the primary; the repository VIP points at it.
 *
 * Signatures: a client signs with the local repository's credentials (signature version 2, as Cumulus
 * expects). The front verifies the signature before reading any of the body (anonymous, unknown-key,
 * wrong-signature and stale requests get 403 and change nothing) and re-signs the request toward each
 * repository with that repository's own credentials.
 *
 * Writes (PUT, POST — multipart initiate and complete — and DELETE) stream to the local repository and,
 * while the guard says so, to the standby's at once: every chunk goes to both, reading pauses while
 * either is slow, nothing is buffered whole. Content-MD5 travels to both, so each checks the body. The
 * client gets the local answer only when both answered 2xx with the same ETag (a multipart ETag is not an
 * MD5 but is the same on both for the same parts); otherwise 503 and nothing is acknowledged. Multipart
 * upload ids differ between the repositories: the front maps the local id to the standby's.
 * Reads and listings go to the local repository only.
 *
 * Deletes are journaled before they are acknowledged: an object DELETE by its path, a multi-object
 * `POST ?delete` by the keys its answer did not list as errors (its small body is read on the way through,
 * up to MAX_MULTI_DELETE_BYTES).
 */
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { pipeline } from 'node:stream';
import { rootCertificates } from 'node:tls';
import { signV2, stringToSignV2, verifyV2 } from './sigv2.js';
import { MAX_MULTI_DELETE_BYTES, deletedKeys } from './multi-delete.js';
import type { FrontGuard, LoneWrite } from '../../src/ports.js';

export interface FrontBackend {
  endpoint: string;
  accessKeyId: string;
  secretAccessKey: string;
}

export interface RepoFrontOptions {
  host: string;
  port: number;
  local: FrontBackend;
  peer: FrontBackend;
  /** The primary's guard; null while this node is not the primary (writes are then refused). */
  guard: () => FrontGuard | null;
  maxClockSkewMs?: number;
  /**
   * The node's `tls`: the front then serves HTTPS only (TLS 1.2 or later) with this certificate and key,
   * so S3 clients reach the repository VIP inside TLS (the certificate must name the VIP's host). Clients
   * authenticate with their S3 signature, not a certificate. `ca` (the cluster CA) is trusted, besides the
   * system's roots, for repositories whose endpoint is https://.
   */
  tls?: { cert: string; key: string; ca: string };
  /**
   * The delete journal: an object DELETE, or a multi-object delete, is acknowledged only once the
   * tombstone of every key it removed is durable. Paths are path-style, `/bucket/key` (key URL-encoded).
   */
  journal?: { deleted(path: string): Promise<void> };
}

/** Headers passed on to the repositories (the rest — hop-by-hop, authorization, host — are not). */
function forwardHeaders(h: http.IncomingHttpHeaders): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(h)) {
    if (v === undefined) continue;
    const l = k.toLowerCase();
    const keep =
      l === 'content-type' || l === 'content-md5' || l === 'content-length' || l === 'cache-control' || l === 'content-disposition' ||
      l === 'content-encoding' || l === 'expires' || l === 'range' || l === 'if-match' || l === 'if-none-match' || l === 'if-modified-since' ||
      l === 'if-unmodified-since' || l === 'transfer-encoding' || (l.startsWith('x-amz-') && l !== 'x-amz-date' && l !== 'x-amz-content-sha256');
    if (keep) out[l] = Array.isArray(v) ? v.join(',') : v;
  }
  return out;
}

function signFor(b: FrontBackend, method: string, path: string, query: Record<string, string | string[]>, headers: Record<string, string>): Record<string, string> {
  const h = { ...headers, 'x-amz-date': new Date().toUTCString() };
  const sts = stringToSignV2({ method, path, query, headers: h });
  return { ...h, authorization: `AWS ${b.accessKeyId}:${signV2(sts, b.secretAccessKey)}` };
}

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

function s3Error(res: http.ServerResponse, status: number, code: string, message: string): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>${message.replace(/[<&>]/g, ' ')}</Message></Error>`;
  res.writeHead(status, { 'content-type': 'application/xml', 'content-length': Buffer.byteLength(body), ...(status === 503 ? { 'retry-after': '1' } : {}) });
  res.end(body);
}

const etagOf = (a: Answer) => String(a.headers.etag ?? '').replace(/"/g, '');

/**
 * The object a write acknowledged (for the guard's check that the standby holds it), or null for a
 * multipart step that creates no object yet (initiate, part upload, abort). The ETag of a completed
 * multipart upload or a copy is in the answer's body.
 */
function objectWrite(method: string, url: URL, a: Answer): LoneWrite | null {
  const q = url.searchParams;
  if (method === 'DELETE') return q.has('uploadId') ? null : { path: url.pathname, etag: null, deleted: true };
  if (method === 'PUT' && !q.has('uploadId') && !q.has('partNumber')) {
    const etag = etagOf(a) || /<ETag>"?([^"<]+)"?<\/ETag>/.exec(a.body.toString())?.[1] || null;
    return { path: url.pathname, etag, deleted: false };
  }
  if (method === 'POST' && q.has('uploadId') && !q.has('partNumber')) {
    const etag = /<ETag>(?:&quot;|")?([^"<&]+)(?:&quot;|")?<\/ETag>/.exec(a.body.toString())?.[1] ?? null;
    return { path: url.pathname, etag, deleted: false };
  }
  return null;
}

export class RepoFront {
  private server: http.Server | null = null;
  private readonly agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
  /** Toward https:// repositories: certificates verified against the system's roots (and the cluster CA). */
  private tlsAgent: https.Agent;
  /** Local multipart upload id → the standby's. */
  private readonly uploads = new Map<string, string>();
  readonly stats = { writes: 0, both: 0, alone: 0, refused: 0, authFailures: 0 };

  constructor(private readonly o: RepoFrontOptions) {
    this.tlsAgent = upstreamAgent(o.tls?.ca);
  }

  /** Renewed certificate, key or CA: new client connections get the new certificate, new upstream ones trust the new CA. */
  setTls(tls: { cert: string; key: string; ca: string }): void {
    this.o.tls = tls;
    if (this.server && 'setSecureContext' in this.server) (this.server as https.Server).setSecureContext({ cert: tls.cert, key: tls.key, minVersion: 'TLSv1.2' });
    const old = this.tlsAgent;
    this.tlsAgent = upstreamAgent(tls.ca);
    setTimeout(() => old.destroy(), 60_000).unref();
  }

  get url(): string {
    const a = this.server?.address() as AddressInfo | null;
    const host = this.o.host.includes(':') ? `[${this.o.host}]` : this.o.host;
    return `${this.o.tls ? 'https' : 'http'}://${host}:${a?.port ?? this.o.port}`;
  }

  async start(): Promise<void> {
    if (this.server) return;
    const handler: http.RequestListener = (req, res) => void this.handle(req, res).catch((err) => s3Error(res, 500, 'InternalError', String(err)));
    const server = this.o.tls ? https.createServer({ cert: this.o.tls.cert, key: this.o.tls.key, minVersion: 'TLSv1.2' }, handler) : http.createServer(handler);
    server.keepAliveTimeout = 5000;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.o.port, this.o.host, () => {
        // Bound: later server errors (accept failing) must neither reach the bind's reject nor go unheard.
        server.off('error', reject);
        server.on('error', () => undefined);
        resolve();
      });
    });
    this.server = server;
  }

  async close(): Promise<void> {
    const s = this.server;
    this.server = null;
    if (s) await new Promise<void>((r) => { s.close(() => r()); s.closeAllConnections(); });
    this.agent.destroy();
    this.tlsAgent.destroy();
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const method = (req.method ?? 'GET').toUpperCase();
    const url = new URL(req.url ?? '/', 'http://front');
    const query: Record<string, string | string[]> = {};
    for (const [k, v] of url.searchParams) {
      const prev = query[k];
      query[k] = prev === undefined ? v : Array.isArray(prev) ? [...prev, v] : [prev, v];
    }
    // Authenticate before a byte of the body is read.
    const verdict = verifyV2({ method, path: url.pathname, query, headers: req.headers }, this.o.local, { nowMs: Date.now(), maxSkewMs: this.o.maxClockSkewMs ?? 900_000 });
    if (!verdict.ok) {
      this.stats.authFailures++;
      s3Error(res, verdict.status, verdict.code, verdict.message);
      req.resume();
      return;
    }
    const headers = forwardHeaders(req.headers);
    const path = url.pathname + url.search;
    if (method === 'GET' || method === 'HEAD') {
      const up = this.send(this.o.local, method, path, url.pathname, query, headers);
      up.on('response', (r) => {
        res.writeHead(r.statusCode ?? 502, r.headers);
        // pipeline, not pipe: a client that goes away mid-download must free the upstream connection
        // (a paused response would hold one of the agent's sockets for good).
        pipeline(r, res, () => undefined);
      });
      up.on('error', (err) => s3Error(res, 502, 'BadGateway', `local repository: ${err.message}`));
      up.end();
      return;
    }
    const guard = this.o.guard();
    if (!guard) {
      this.stats.refused++;
      s3Error(res, 503, 'ServiceUnavailable', 'this node is not the primary');
      req.resume();
      return;
    }
    this.stats.writes++;
    const tee = guard.teeToPeer();
    if (!tee && !guard.mayAckAlone()) {
      this.stats.refused++;
      s3Error(res, 503, 'ServiceUnavailable', "the standby's repository is unreachable and this node may not acknowledge alone yet");
      req.resume();
      return;
    }
    // The standby's upload id for a multipart request.
    let peerPath = path;
    let peerQuery = query;
    const uploadId = url.searchParams.get('uploadId');
    let peerOk = tee;
    if (tee && uploadId !== null) {
      const mapped = this.uploads.get(uploadId);
      if (mapped === undefined) peerOk = false;
      else {
        const u = new URL(url.href);
        u.searchParams.set('uploadId', mapped);
        peerPath = u.pathname + u.search;
        peerQuery = { ...query, uploadId: mapped };
      }
    }
    if (tee && !peerOk && !guard.mayAckAlone()) {
      this.stats.refused++;
      s3Error(res, 503, 'ServiceUnavailable', 'multipart upload started while the standby was away: start it again');
      req.resume();
      return;
    }
    // A multi-object delete names its keys in the body: keep a copy of it (small, and bounded) to journal them.
    const multiDelete = method === 'POST' && url.searchParams.has('delete');
    const declared = Number(req.headers['content-length'] ?? Number.NaN);
    if (multiDelete && !(declared >= 0 && declared <= MAX_MULTI_DELETE_BYTES)) {
      s3Error(res, 400, 'MalformedXML', `a multi-object delete needs a Content-Length of at most ${MAX_MULTI_DELETE_BYTES} bytes`);
      req.resume();
      return;
    }
    const body: Buffer[] | null = multiDelete ? [] : null;
    const local = this.send(this.o.local, method, path, url.pathname, query, headers);
    const peer = peerOk ? this.send(this.o.peer, method, peerPath, url.pathname, peerQuery, headers) : null;
    const localAnswer = answer(local);
    const peerAnswer = peer ? answer(peer) : null;
    // Both sides must see every byte; a side that stops reading holds the client back (no buffering).
    const sinks = peer ? [local, peer] : [local];
    req.on('data', (chunk: Buffer) => {
      body?.push(chunk);
      let waiting = 0;
      for (const s of sinks) {
        if (s.destroyed) continue;
        if (!s.write(chunk)) {
          waiting++;
          s.once('drain', () => {
            if (--waiting === 0) req.resume();
          });
        }
      }
      if (waiting) req.pause();
    });
    req.on('end', () => sinks.forEach((s) => s.end()));
    req.on('aborted', () => sinks.forEach((s) => s.destroy()));
    req.on('error', () => sinks.forEach((s) => s.destroy()));
    // A failed standby must not stall the local side: drop it from the sinks.
    peer?.on('error', () => {
      const i = sinks.indexOf(peer);
      if (i >= 0) sinks.splice(i, 1);
      if (req.isPaused() && sinks.every((s) => !s.writableNeedDrain)) req.resume();
    });
    const [l, p] = await Promise.all([localAnswer, peerAnswer ?? Promise.resolve(null)]);
    if (l instanceof Error) {
      s3Error(res, 502, 'BadGateway', `local repository: ${l.message}`);
      return;
    }
    const localOk = l.status >= 200 && l.status < 300;
    const peerAgrees =
      p !== null && !(p instanceof Error) && p.status >= 200 && p.status < 300 && (method === 'DELETE' || etagOf(p) === etagOf(l));
    if (localOk && peer && p !== null && !(p instanceof Error) && !peerAgrees && p.status >= 200 && p.status < 300) {
      // Both stored something, but not the same thing: never acknowledge that.
      this.stats.refused++;
      s3Error(res, 502, 'BadDigest', `the repositories disagree on the content (ETag ${etagOf(l)} vs ${etagOf(p)})`);
      return;
    }
    // The objects this write removed or wrote, path-style.
    const bucketPath = url.pathname.replace(/\/+$/, '');
    const writes: LoneWrite[] = body
      ? deletedKeys(Buffer.concat(body).toString(), l.body.toString()).map((k) => ({ path: `${bucketPath}/${encodeURIComponent(k)}`, etag: null, deleted: true }))
      : [objectWrite(method, url, l)].filter((w): w is LoneWrite => w !== null);
    if (localOk && !peerAgrees) {
      if (peer) guard.peerFailed();
      if (!guard.mayAckAlone()) {
        this.stats.refused++;
        const why = p instanceof Error ? p.message : p ? `HTTP ${p.status}` : 'not reachable';
        s3Error(res, 503, 'ServiceUnavailable', `the standby's repository did not take the write (${why}); not acknowledged`);
        return;
      }
      if (writes.length) for (const w of writes) guard.ackedAlone(w);
      else guard.ackedAlone();
      this.stats.alone++;
    } else if (localOk) {
      for (const w of writes) guard.ackedBoth(w.path);
      this.stats.both++;
    }
    const deleted = writes.filter((w) => w.deleted).map((w) => w.path);
    if (localOk && deleted.length && this.o.journal) {
      const journal = this.o.journal;
      try {
        // Concurrent appends share one fdatasync (the journal commits in groups).
        await Promise.all(deleted.map((d) => journal.deleted(d)));
      } catch (err) {
        s3Error(res, 503, 'ServiceUnavailable', `the delete could not be recorded in the delete journal (${(err as Error).message}); not acknowledged`);
        return;
      }
    }
    // Multipart initiate: remember the standby's id for the local one.
    if (localOk && method === 'POST' && url.searchParams.has('uploads') && p && !(p instanceof Error)) {
      const li = /<UploadId>([^<]+)<\/UploadId>/.exec(l.body.toString())?.[1];
      const pi = /<UploadId>([^<]+)<\/UploadId>/.exec(p.body.toString())?.[1];
      if (li && pi) this.uploads.set(li, pi);
    }
    if (localOk && uploadId !== null && (method === 'DELETE' || (method === 'POST' && !url.searchParams.has('partNumber')))) this.uploads.delete(uploadId);
    const out: Record<string, string | string[]> = {};
    for (const [k, v] of Object.entries(l.headers)) if (v !== undefined && k !== 'connection' && k !== 'transfer-encoding' && k !== 'keep-alive') out[k] = v;
    out['content-length'] = String(l.body.length);
    res.writeHead(l.status, out);
    res.end(l.body);
  }

  private send(b: FrontBackend, method: string, path: string, pathname: string, query: Record<string, string | string[]>, headers: Record<string, string>): http.ClientRequest {
    const u = new URL(b.endpoint);
    const secure = u.protocol === 'https:';
    return (secure ? https : http).request({
      host: u.hostname.replace(/^\[|\]$/g, ''),
      port: u.port || (secure ? 443 : 80),
      method,
      path,
      agent: secure ? this.tlsAgent : this.agent,
      headers: signFor(b, method, pathname, query, headers),
    });
  }
}

/** The whole (small) answer of a write, or the error that prevented it. */
function answer(r: http.ClientRequest): Promise<Answer | Error> {
  return new Promise((resolve) => {
    r.once('error', (err) => resolve(err));
    r.once('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 502, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', (err) => resolve(err));
    });
  });
}

/** Toward https:// repositories: the system's roots, and the cluster CA when `tls` is configured. */
function upstreamAgent(clusterCa: string | undefined): https.Agent {
  return new https.Agent({ keepAlive: true, maxSockets: 64, ...(clusterCa ? { ca: [...rootCertificates, clusterCa] } : {}) });
}
