import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import type { NextFunction, Request, Response } from 'express';
import { ReplayGuard } from './replay.js';
import { clientCertProblem, tlsSocketOf } from './tls.js';
import { keysOf, signingKey, type KeyInput, type KeyUse } from './keyring.js';
import { PROTOCOL_HEADER, PROTOCOL_MAX_HEADER, RELEASE_HEADER, canTalk, incompatibleBody, ownProtocol, protocolHeaders, protocolProblem, statedVersions } from './protocol.js';

/**
 * HMAC-SHA256 authentication of sidecar-to-sidecar (and sidecar-to-witness) requests.
 * The signature covers method, path with query, timestamp, nonce, sender and the body's SHA-256 (sent in
 * a header), so the receiver checks it *before* reading the body: an unsigned or wrongly signed request
 * is refused without its body ever being buffered. The body is then read up to the route's limit and
 * must hash to the signed value before it is parsed. A captured request cannot be replayed (nonce + 30 s
 * window + nothing signed before the receiver started) nor altered. Streamed bodies are marked `STREAM`
 * and are accepted only by routes that verify content checksums carried in the signed path.
 *
 * Replies are signed too (over the request's nonce, the status and the reply body's SHA-256), so a
 * client can trust an `ack` or a `granted` only when it comes from a holder of the secret.
 */
export const HEADER = {
  node: 'x-nha-node',
  ts: 'x-nha-ts',
  nonce: 'x-nha-nonce',
  bodyHash: 'x-nha-content-sha256',
  signature: 'x-nha-signature',
  replyNode: 'x-nha-reply-node',
  replyBodyHash: 'x-nha-reply-content-sha256',
  replySignature: 'x-nha-reply-signature',
} as const;

export const STREAM_BODY = 'STREAM';
/** How far a signed request's timestamp may be from the receiver's clock. */
export const MAX_SKEW_MS = 30_000;
/** Default body limit of a signed JSON request (heartbeat, vote, takeover, witness calls). */
export const SMALL_BODY_BYTES = 16 * 1024;

export function sha256Hex(data: Buffer | string): string {
  return createHash('sha256').update(data).digest('hex');
}

function canonical(method: string, path: string, ts: string, nonce: string, bodyHash: string, node: string): string {
  return `${method.toUpperCase()}\n${path}\n${ts}\n${nonce}\n${bodyHash}\n${node}`;
}

function replyCanonical(nonce: string, status: number, bodyHash: string, node: string): string {
  return `reply\n${nonce}\n${status}\n${bodyHash}\n${node}`;
}

/** Headers for a signed request. `body` is the exact bytes sent (or STREAM_BODY for a streamed body). */
export function signRequest(
  secret: KeyInput,
  node: string,
  method: string,
  path: string,
  body: Buffer | string | typeof STREAM_BODY,
  nowMs = Date.now(),
): Record<string, string> {
  const ts = String(nowMs);
  const nonce = randomBytes(12).toString('hex');
  const bodyHash = body === STREAM_BODY ? STREAM_BODY : sha256Hex(body);
  const signature = createHmac('sha256', signingKey(secret)).update(canonical(method, path, ts, nonce, bodyHash, node)).digest('hex');
  return {
    [HEADER.node]: node,
    [HEADER.ts]: ts,
    [HEADER.nonce]: nonce,
    [HEADER.bodyHash]: bodyHash,
    [HEADER.signature]: signature,
  };
}

/**
 * Lease traffic — heartbeats, votes, takeover offers and every witness call — is signed with the cluster
 * `secret` (the lease key, which the witness holds too); every other `/peer/*` route is a data path
 * (base backups, WAL, file writes, Nimbus state, repository hints) signed with `dataSecret`, which the
 * witness never holds. Client and server agree on the split by path.
 */
export function isLeasePath(path: string): boolean {
  const p = path.split('?')[0];
  return p === '/peer/heartbeat' || p === '/peer/vote' || p === '/peer/takeover' || p.startsWith('/witness/');
}

/** Reply headers: binds status and body to the request's nonce. */
export function signReply(secret: string, node: string, requestNonce: string, status: number, body: Buffer | string | typeof STREAM_BODY): Record<string, string> {
  const bodyHash = body === STREAM_BODY ? STREAM_BODY : sha256Hex(body);
  return {
    [HEADER.replyNode]: node,
    [HEADER.replyBodyHash]: bodyHash,
    [HEADER.replySignature]: createHmac('sha256', secret).update(replyCanonical(requestNonce, status, bodyHash, node)).digest('hex'),
  };
}

/**
 * Null when the reply to the request sent with `requestNonce` is signed with the secret over this status
 * and body (`STREAM_BODY`: a streamed reply, only its status and headers are covered); else the reason.
 */
export function verifyReply(
  secret: KeyInput,
  headers: IncomingHttpHeaders,
  requestNonce: string,
  status: number,
  body: Buffer | typeof STREAM_BODY,
): string | null {
  const h = (k: string) => {
    const v = headers[k];
    return Array.isArray(v) ? v[0] : v;
  };
  const node = h(HEADER.replyNode);
  const bodyHash = h(HEADER.replyBodyHash);
  const sig = h(HEADER.replySignature);
  if (!node || !bodyHash || !sig) return 'reply is not signed';
  if (body === STREAM_BODY ? bodyHash !== STREAM_BODY : bodyHash !== sha256Hex(body)) return 'reply body does not match its signed hash';
  const given = Buffer.from(sig, 'hex');
  const signedWith = (key: string) => {
    const expected = createHmac('sha256', key).update(replyCanonical(requestNonce, status, bodyHash, node)).digest();
    return given.length === expected.length && timingSafeEqual(given, expected);
  };
  if (!keysOf(secret).some(signedWith)) return 'bad reply signature (wrong shared secret, or altered on the way)';
  return null;
}

/** `key`: the one of the receiver's keys the request was signed with (its reply is signed with it too). */
export type VerifyResult = { ok: true; node: string; nonce: string; ts: number; bodyHash: string; key: string } | { ok: false; reason: string };

/**
 * Remembers recent nonces to refuse replays inside the skew window. A nonce is needed for `2 × MAX_SKEW_MS`
 * after it arrived (a replay later than that carries a timestamp the window refuses), so every use drops
 * the ones older than that from the front (a Map iterates in arrival order): the cache holds about one
 * window of traffic (1,200 nonces at 20 datagrams a second), not `max`. `max` caps it against a flood
 * inside one window, dropping the oldest first.
 */
export class NonceCache {
  private readonly seen = new Map<string, number>();
  constructor(private readonly max = 20_000) {}
  /** Returns false when the nonce was already used. */
  use(nonce: string, nowMs: number): boolean {
    for (const [k, t] of this.seen) {
      if (nowMs - t > MAX_SKEW_MS * 2 || this.seen.size >= this.max) this.seen.delete(k);
      else break;
    }
    if (this.seen.has(nonce)) return false;
    this.seen.set(nonce, nowMs);
    return true;
  }
  /** How many nonces are held (for tests and the soak's accounting). */
  get size(): number {
    return this.seen.size;
  }
}

interface VerifyOpts {
  allowStream?: boolean;
  nonces?: NonceCache;
  replay?: ReplayGuard;
  /** This receiver's node name: a request claiming it is a reflection and refused. */
  self?: string | null;
  nowMs?: number;
}

/**
 * Check a request's signature headers without its body: the signature covers the body hash the sender
 * claims, so a request that passes is authentic except for its body, which `bodyMatches` then checks.
 * The nonce is used up only by a request that passes.
 */
export function verifyHeaders(secret: KeyInput, headers: IncomingHttpHeaders | Record<string, string | string[] | undefined>, method: string, path: string, opts: VerifyOpts = {}): VerifyResult {
  const h = (k: string) => {
    const v = headers[k];
    return Array.isArray(v) ? v[0] : v;
  };
  const node = h(HEADER.node);
  const ts = h(HEADER.ts);
  const nonce = h(HEADER.nonce);
  const bodyHash = h(HEADER.bodyHash);
  const sig = h(HEADER.signature);
  if (!node || !ts || !nonce || !bodyHash || !sig) return { ok: false, reason: 'missing signature headers' };
  const now = opts.nowMs ?? Date.now();
  const tsNum = Number(ts);
  if (!Number.isFinite(tsNum) || Math.abs(now - tsNum) > MAX_SKEW_MS) {
    return { ok: false, reason: 'timestamp outside the allowed window (check clocks)' };
  }
  if (bodyHash === STREAM_BODY) {
    if (!opts.allowStream) return { ok: false, reason: 'streamed body not accepted on this route' };
  } else if (!/^[0-9a-f]{64}$/.test(bodyHash)) {
    return { ok: false, reason: 'malformed body hash' };
  }
  const given = Buffer.from(sig, 'hex');
  const text = canonical(method, path, ts, nonce, bodyHash, node);
  const key = keysOf(secret).find((k) => {
    const expected = createHmac('sha256', k).update(text).digest();
    return given.length === expected.length && timingSafeEqual(given, expected);
  });
  if (key === undefined) return { ok: false, reason: 'bad signature (wrong shared secret?)' };
  if (opts.self != null && node === opts.self) return { ok: false, reason: 'request claims to come from this node (reflected?)' };
  const stale = opts.replay?.check(node, tsNum);
  if (stale) return { ok: false, reason: stale };
  if (opts.nonces && !opts.nonces.use(nonce, now)) return { ok: false, reason: 'replayed request' };
  return { ok: true, node, nonce, ts: tsNum, bodyHash, key };
}

/** Full check of a request whose body is already at hand (tests, tools). */
export function verifyRequest(
  secret: KeyInput,
  headers: Record<string, string | string[] | undefined>,
  method: string,
  path: string,
  rawBody: Buffer | undefined,
  opts: VerifyOpts = {},
): VerifyResult {
  const r = verifyHeaders(secret, headers, method, path, opts);
  if (r.ok && r.bodyHash !== STREAM_BODY && sha256Hex(rawBody ?? Buffer.alloc(0)) !== r.bodyHash) return { ok: false, reason: 'body hash mismatch' };
  return r;
}

/** Request with the verified raw body, and the authenticated sender. */
export interface PeerRequest extends Request {
  rawBody?: Buffer;
  peerNode?: string;
}

/** Answer a refused request; a body not read yet is not read at all (the connection is closed after the answer). */
export function refuse(req: Request, res: Response, status: number, error: string, message: string, headers: Record<string, string> = {}, body?: object): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  if (!req.complete) res.set('connection', 'close');
  res.status(status).set(headers).json(body ?? { error, message });
}

class BodyTooLarge extends Error {}

/** Read the request body up to `limit` bytes; refuses early on a Content-Length over the limit. */
function readBody(req: Request, limit: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) return Promise.reject(new BodyTooLarge());
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (c: Buffer) => {
      size += c.length;
      if (size > limit) {
        cleanup();
        req.pause();
        reject(new BodyTooLarge());
        return;
      }
      chunks.push(c);
    };
    const onEnd = () => {
      cleanup();
      resolve(Buffer.concat(chunks, size));
    };
    const onError = (err: Error) => {
      cleanup();
      reject(err);
    };
    const cleanup = () => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
  });
}

/** Sign every reply of an authenticated request (JSON bodies by content, streamed bodies by status). */
function signReplies(res: Response, secret: string, self: string, nonce: string): void {
  const send = res.send.bind(res);
  const writeHead = res.writeHead.bind(res) as (...args: unknown[]) => Response;
  res.send = ((body?: unknown) => {
    if (!res.headersSent && (typeof body === 'string' || Buffer.isBuffer(body))) {
      res.set(signReply(secret, self, nonce, res.statusCode, Buffer.isBuffer(body) ? body : Buffer.from(body, 'utf8')));
    }
    return send(body as never);
  }) as Response['send'];
  res.writeHead = ((...args: unknown[]) => {
    if (!res.getHeader(HEADER.replySignature)) {
      const status = typeof args[0] === 'number' ? args[0] : res.statusCode;
      for (const [k, v] of Object.entries(signReply(secret, self, nonce, status, STREAM_BODY))) res.setHeader(k, v);
    }
    return writeHead(...args);
  }) as Response['writeHead'];
}

export interface PeerAuthOptions {
  /** Accept `STREAM` bodies (left unread for the route, which must check a checksum in the signed path). */
  allowStream?: boolean;
  /** Largest body read for a hashed request (default 16 KB). */
  maxBodyBytes?: number;
  /** Shared nonce cache (one per receiver, so a request is not accepted twice on different routes). */
  nonces?: NonceCache;
  /** Refuses requests signed before this receiver started (shared with the UDP receiver). */
  replay?: ReplayGuard;
  /** This receiver's node name: signs replies, and requests claiming it are refused as reflections. */
  self?: string | null;
  /** Called with every refused request (rate limiting, coalesced events). */
  onReject?: (reason: string, req: Request) => void;
  /** Answer for a refused request from a source over its failure budget (429 instead of 401). */
  limited?: (req: Request) => boolean;
  /** Records which key each peer signs with (status). */
  keyUse?: KeyUse;
  /**
   * Called with each authenticated request's protocol version and release (a request without them is
   * version 1, release unknown) and, when that version is not accepted, the reason it is refused.
   */
  onProtocol?: (node: string, protocol: number, release: string | null, problem: string | null) => void;
}

/**
 * Express middleware: over TLS checks the client certificate (verified against the CA, naming the
 * signing node), then the signature headers, and refuses (401, JSON) before reading any body; then
 * reads the body up to the limit (413 beyond), checks its hash and parses JSON (400 when malformed)
 * into `req.body`. Streamed bodies are left to the route. Replies are signed.
 *
 * Mounted behind `express.json({ verify: captureRawBody })` (older wiring) it checks the captured body.
 */
export function requirePeerAuth(secret: KeyInput, opts: PeerAuthOptions = {}) {
  const nonces = opts.nonces ?? new NonceCache();
  const replay = opts.replay ?? new ReplayGuard(null);
  const limit = opts.maxBodyBytes ?? SMALL_BODY_BYTES;
  return (req: PeerRequest, res: Response, next: NextFunction) => {
    // Already authenticated further up (a feature router that did not answer falls through to /peer).
    if (req.peerNode !== undefined) return next();
    const reject = (reason: string) => {
      opts.onReject?.(reason, req);
      if (opts.limited?.(req)) refuse(req, res, 429, 'AUTH_RATE_LIMITED', `peer authentication failed too often from this address; wait a minute (${reason})`, { 'retry-after': '60' });
      else refuse(req, res, 401, 'PEER_AUTH_FAILED', `peer authentication failed: ${reason}`);
    };
    // Over TLS (tls configured) the client certificate must verify against the CA and name the node
    // that signs the request: checked first, before the signature and before any body is read.
    const tlsSocket = tlsSocketOf(req.socket);
    if (tlsSocket) {
      const claimed = req.headers[HEADER.node];
      const bad = clientCertProblem(tlsSocket, Array.isArray(claimed) ? claimed[0] : claimed);
      if (bad) return reject(bad);
    }
    const r = verifyHeaders(secret, req.headers, req.method, req.originalUrl, { allowStream: opts.allowStream, nonces, replay, self: opts.self ?? null });
    if (!r.ok) return reject(r.reason);
    const accept = () => {
      replay.accepted(r.node, r.ts);
      req.peerNode = r.node;
      opts.keyUse?.used(r.node, r.key);
      signReplies(res, r.key, opts.self ?? 'peer', r.nonce);
      // An authenticated sender of a version this node does not read gets a signed refusal that says
      // so: it knows this node is alive and why it will not listen, rather than hearing silence. A reply
      // is written in the request's version.
      const header = (k: string) => {
        const v = req.headers[k];
        return Array.isArray(v) ? v[0] : v;
      };
      const stated = statedVersions(header(PROTOCOL_HEADER), header(PROTOCOL_MAX_HEADER));
      const problem = protocolProblem(stated.v);
      // Refused, but the sender can write in this node's version: it will, once told (negotiation).
      opts.onProtocol?.(r.node, stated.max, header(RELEASE_HEADER) ?? null, problem && !canTalk(stated.max) ? problem : null);
      const me = ownProtocol();
      res.set(protocolHeaders(problem ? me.version : Math.min(me.version, stated.v)));
      if (problem) return refuse(req, res, 400, 'PEER_INCOMPATIBLE', problem, {}, incompatibleBody(problem));
      next();
    };
    if (r.bodyHash === STREAM_BODY) return accept();
    const parsedUpstream = (req as unknown as { _body?: boolean })._body === true;
    const body: Promise<Buffer> = parsedUpstream ? Promise.resolve(req.rawBody ?? Buffer.alloc(0)) : readBody(req, limit);
    body.then(
      (buf) => {
        if (sha256Hex(buf) !== r.bodyHash) return reject('body hash mismatch');
        req.rawBody = buf;
        if (!parsedUpstream) {
          let parsed: unknown = {};
          if (buf.length) {
            try {
              parsed = JSON.parse(buf.toString('utf8'));
            } catch {
              return refuse(req, res, 400, 'BAD_JSON', 'the request body is not valid JSON');
            }
          }
          req.body = parsed;
          // Body parsers further down (express.json() in a feature router) see the body as read.
          (req as unknown as { _body: boolean })._body = true;
        }
        accept();
      },
      (err: unknown) => {
        if (err instanceof BodyTooLarge) refuse(req, res, 413, 'BODY_TOO_LARGE', `the request body is larger than this route accepts (${limit} bytes)`);
        else refuse(req, res, 400, 'BAD_REQUEST', 'the request body could not be read');
      },
    );
  };
}

/** `express.json({ verify: captureRawBody })`: keeps the raw bytes for the hash check (older wiring). */
export function captureRawBody(req: Request, _res: Response, buf: Buffer): void {
  (req as PeerRequest).rawBody = buf;
}
