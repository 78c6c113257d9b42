import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { NextFunction, Request, Response } from 'express';

/**
 * HMAC-SHA256 authentication of sidecar-to-sidecar (and sidecar-to-witness) requests.
 * The signature covers method, path with query, timestamp, nonce, sender and the body's SHA-256, so a
 * captured request cannot be replayed (nonce + 30 s window) nor altered. Streamed bodies are marked
 * `STREAM` and are accepted only by routes that verify content checksums carried in the signed path.
 */
export const HEADER = {
  node: 'x-nha-node',
  ts: 'x-nha-ts',
  nonce: 'x-nha-nonce',
  bodyHash: 'x-nha-content-sha256',
  signature: 'x-nha-signature',
} as const;

export const STREAM_BODY = 'STREAM';
/** How far a signed request's timestamp may be from the receiver's clock. */
export const MAX_SKEW_MS = 30_000;

export function sha256Hex(data: Buffer | string): string {
  return createHash('sha256').update(data).digest('hex');
}

function canonical(method: string, path: string, ts: string, nonce: string, bodyHash: string, node: string): string {
  return `${method.toUpperCase()}\n${path}\n${ts}\n${nonce}\n${bodyHash}\n${node}`;
}

/** Headers for a signed request. `body` is the exact bytes sent (or STREAM_BODY for a streamed body). */
export function signRequest(
  secret: string,
  node: string,
  method: string,
  path: string,
  body: Buffer | string | typeof STREAM_BODY,
  nowMs = Date.now(),
): Record<string, string> {
  const ts = String(nowMs);
  const nonce = randomBytes(12).toString('hex');
  const bodyHash = body === STREAM_BODY ? STREAM_BODY : sha256Hex(body);
  const signature = createHmac('sha256', secret).update(canonical(method, path, ts, nonce, bodyHash, node)).digest('hex');
  return {
    [HEADER.node]: node,
    [HEADER.ts]: ts,
    [HEADER.nonce]: nonce,
    [HEADER.bodyHash]: bodyHash,
    [HEADER.signature]: signature,
  };
}

export type VerifyResult = { ok: true; node: string } | { ok: false; reason: string };

/** Remembers recent nonces (bounded) to refuse replays inside the skew window. */
export class NonceCache {
  private readonly seen = new Map<string, number>();
  constructor(private readonly max = 20_000) {}
  /** Returns false when the nonce was already used. */
  use(nonce: string, nowMs: number): boolean {
    if (this.seen.has(nonce)) return false;
    this.seen.set(nonce, nowMs);
    if (this.seen.size > this.max) {
      for (const [k, t] of this.seen) {
        if (nowMs - t > MAX_SKEW_MS * 2 || this.seen.size > this.max) this.seen.delete(k);
        else break;
      }
    }
    return true;
  }
}

export function verifyRequest(
  secret: string,
  headers: Record<string, string | string[] | undefined>,
  method: string,
  path: string,
  rawBody: Buffer | undefined,
  opts: { allowStream?: boolean; nonces?: NonceCache; nowMs?: number } = {},
): VerifyResult {
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
  } else if (sha256Hex(rawBody ?? Buffer.alloc(0)) !== bodyHash) {
    return { ok: false, reason: 'body hash mismatch' };
  }
  const expected = createHmac('sha256', secret).update(canonical(method, path, ts, nonce, bodyHash, node)).digest();
  const given = Buffer.from(sig, 'hex');
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
    return { ok: false, reason: 'bad signature (wrong shared secret?)' };
  }
  if (opts.nonces && !opts.nonces.use(nonce, now)) return { ok: false, reason: 'replayed request' };
  return { ok: true, node };
}

/** Request with the raw body captured by the JSON parser, and the authenticated sender. */
export interface PeerRequest extends Request {
  rawBody?: Buffer;
  peerNode?: string;
}

/**
 * Express middleware: 401 with a JSON error unless the request carries a valid HMAC signature.
 * Mount after `express.json({ verify: captureRawBody })`.
 */
export function requirePeerAuth(
  secret: string,
  opts: { allowStream?: boolean; onReject?: (reason: string, req: Request) => void } = {},
) {
  const nonces = new NonceCache();
  return (req: PeerRequest, res: Response, next: NextFunction) => {
    const r = verifyRequest(secret, req.headers, req.method, req.originalUrl, req.rawBody, {
      allowStream: opts.allowStream,
      nonces,
    });
    if (!r.ok) {
      opts.onReject?.(r.reason, req);
      res.status(401).json({ error: 'PEER_AUTH_FAILED', message: `peer authentication failed: ${r.reason}` });
      return;
    }
    req.peerNode = r.node;
    next();
  };
}

export function captureRawBody(req: Request, _res: Response, buf: Buffer): void {
  (req as PeerRequest).rawBody = buf;
}
