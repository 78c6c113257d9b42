import http from 'node:http';
import https from 'node:https';
import type { Readable } from 'node:stream';
import type { PeerTransport } from '../ports.js';
import { HaError, type ErrorCode } from '../errors.js';
import { HEADER, isLeasePath, signRequest, STREAM_BODY, verifyReply } from './auth.js';
import { UdpClient } from './udp.js';
import type { TlsMaterial } from './tls.js';
import type { KeyInput } from './keyring.js';

/** TLS verification errors of node:tls / OpenSSL, explained for an operator. */
const TLS_TRUST_ERRORS = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'CERT_SIGNATURE_FAILURE',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);

function unreachable(baseUrl: string, path: string, err: Error): HaError {
  const code = (err as NodeJS.ErrnoException).code ?? '';
  const hint = TLS_TRUST_ERRORS.has(code)
    ? ` (TLS: the server's certificate is not trusted: it must be issued by the CA in tls.ca and name the URL's host)`
    : /alert|certificate|handshake|wrong version number/i.test(err.message)
      ? ' (TLS: check that both ends have tls configured with the same CA and that this node presents its certificate)'
      : '';
  return new HaError('PEER_UNREACHABLE', `${baseUrl}${path}: ${err.message}${hint}`, code ? { code } : undefined);
}

interface RawResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

/**
 * Signed HTTP client for peer and witness requests (udp:// targets go over signed datagrams instead). It sits on node:http directly (no client library)
 * with keep-alive, because heartbeats are the sidecar's hot path: one small request on an open
 * connection per path and interval.
 *
 * A successful reply counts only when it is signed with the secret over this request's nonce, its
 * status and its body (a heartbeat `ack` is a lease vote, a witness `granted` an epoch): anything else
 * fails with PEER_AUTH_FAILED. Error replies need no signature, since they can only make a call fail.
 *
 * With `tls` (config `tls`), https:// targets are reached with this node's certificate as client
 * certificate and trusted only when the server's certificate verifies against the cluster CA and names
 * the URL's host; plain http:// targets are refused, so nothing falls back to clear text. udp://
 * targets stay datagrams (authenticated, not encrypted: docs/security.md).
 */
export class PeerClient implements PeerTransport {
  private readonly agent = new http.Agent({ keepAlive: true, maxSockets: 16, keepAliveMsecs: 1000 });
  private readonly tlsAgent: https.Agent;
  /** Signed datagrams for udp:// targets (heartbeats, witness lease calls). */
  private udp: UdpClient | null = null;
  private readonly tls: TlsMaterial | null;

  /** Key(s) of the data paths (`dataSecret`); the lease key(s) `secret` when none is configured. */
  private readonly dataSecret: KeyInput;

  constructor(
    private readonly node: string,
    /** The lease key(s): the first signs, a reply signed with any is accepted. */
    private readonly secret: KeyInput,
    opts: { tls?: TlsMaterial | null; dataSecret?: KeyInput } = {},
  ) {
    this.tls = opts.tls ?? null;
    this.dataSecret = opts.dataSecret ?? secret;
    this.tlsAgent = new https.Agent({
      keepAlive: true,
      maxSockets: 16,
      keepAliveMsecs: 1000,
      ...(this.tls ? { ca: this.tls.ca, cert: this.tls.cert, key: this.tls.key, minVersion: 'TLSv1.2' as const } : {}),
    });
  }

  /** The key that signs a request to `path` and its reply: lease traffic or data paths (`isLeasePath`). */
  private keyFor(path: string): KeyInput {
    return isLeasePath(path) ? this.secret : this.dataSecret;
  }

  private open(method: string, baseUrl: string, path: string, headers: Record<string, string>, timeoutMs: number, signal?: AbortSignal): http.ClientRequest {
    const url = new URL(baseUrl.replace(/\/$/, '') + path);
    if (this.tls && url.protocol !== 'https:') {
      throw new HaError('CONFIG_INVALID', `${baseUrl}: tls is configured, so peer and witness URLs must be https:// (nothing is sent in clear text)`);
    }
    const mod = url.protocol === 'https:' ? https : http;
    const req = mod.request(url, { method, headers, agent: url.protocol === 'https:' ? this.tlsAgent : this.agent, ...(signal ? { signal } : {}) });
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`timeout of ${timeoutMs}ms exceeded`)));
    return req;
  }

  private send(method: string, baseUrl: string, path: string, headers: Record<string, string>, body: string | Readable, timeoutMs: number, signal?: AbortSignal): Promise<RawResponse> {
    return new Promise((resolve, reject) => {
      const req = this.open(method, baseUrl, path, headers, timeoutMs, signal);
      req.on('error', (err) => reject(unreachable(baseUrl, path, err)));
      req.on('response', (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
        res.on('error', (err) => reject(new HaError('PEER_UNREACHABLE', `${baseUrl}${path}: ${err.message}`)));
      });
      if (typeof body === 'string') req.end(body);
      else {
        body.on('error', (err) => req.destroy(err));
        body.pipe(req);
      }
    });
  }

  /** The body of a successful, verified reply; throws for an error or an unverified reply. */
  private accept<T>(baseUrl: string, path: string, nonce: string, res: RawResponse): T {
    if (res.status >= 400) this.fail(baseUrl, path, res);
    const bad = verifyReply(this.keyFor(path), res.headers, nonce, res.status, res.body);
    if (bad) throw new HaError('PEER_AUTH_FAILED', `${baseUrl}${path}: ${bad}: check that both ends use the same secret and run this version`);
    return (res.body.length ? JSON.parse(res.body.toString('utf8')) : null) as T;
  }

  private fail(baseUrl: string, path: string, res: Pick<RawResponse, 'status' | 'body'>): never {
    if (res.status === 401) {
      throw new HaError('PEER_AUTH_FAILED', `${baseUrl} refused our signature: check that both nodes use the same secret`);
    }
    let data: unknown = null;
    try {
      data = JSON.parse(res.body.toString('utf8'));
    } catch {
      data = { message: res.body.toString('utf8').slice(0, 300) };
    }
    const obj = (data && typeof data === 'object' ? data : {}) as { error?: string; message?: string };
    const code = (obj.error as ErrorCode | undefined) || 'PEER_UNREACHABLE';
    throw new HaError(code, `${baseUrl}${path}: HTTP ${res.status} ${obj.message ?? ''}`.trim(), { status: res.status, body: data });
  }

  async post<T>(baseUrl: string, path: string, body: unknown, timeoutMs: number, signal?: AbortSignal): Promise<T> {
    if (baseUrl.startsWith('udp:')) {
      // Datagrams carry lease traffic only (heartbeats, witness calls): the lease key.
      this.udp ??= new UdpClient(this.node, this.secret);
      return this.udp.post<T>(baseUrl, path, body ?? {}, timeoutMs, signal);
    }
    const data = JSON.stringify(body ?? {});
    const headers: Record<string, string> = {
      'content-type': 'application/json',
      'content-length': String(Buffer.byteLength(data)),
      ...signRequest(this.keyFor(path), this.node, 'POST', path, data),
    };
    const res = await this.send('POST', baseUrl, path, headers, data, timeoutMs, signal);
    return this.accept<T>(baseUrl, path, headers[HEADER.nonce], res);
  }

  /** GET a streamed response (e.g. a base backup) from the peer. */
  getStream(baseUrl: string, path: string, timeoutMs: number): Promise<Readable> {
    const headers = signRequest(this.keyFor(path), this.node, 'GET', path, '');
    return new Promise((resolve, reject) => {
      const req = this.open('GET', baseUrl, path, headers, timeoutMs);
      req.on('error', (err) => reject(unreachable(baseUrl, path, err)));
      req.on('response', (res) => {
        if ((res.statusCode ?? 0) < 400) {
          const bad = verifyReply(this.keyFor(path), res.headers, headers[HEADER.nonce], res.statusCode ?? 0, STREAM_BODY);
          if (bad) {
            res.destroy();
            reject(new HaError('PEER_AUTH_FAILED', `${baseUrl}${path}: ${bad}: check that both ends use the same secret and run this version`));
          } else resolve(res);
          return;
        }
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          try {
            this.fail(baseUrl, path, { status: res.statusCode ?? 0, body: Buffer.concat(chunks) });
          } catch (err) {
            reject(err);
          }
        });
      });
      req.end();
    });
  }

  /** PUT a streamed body; the route must accept STREAM bodies and check a checksum in the signed path. */
  async putStream<T>(baseUrl: string, path: string, body: Readable, size: number, timeoutMs: number): Promise<T> {
    const headers: Record<string, string> = {
      'content-type': 'application/octet-stream',
      'content-length': String(size),
      ...signRequest(this.keyFor(path), this.node, 'PUT', path, STREAM_BODY),
    };
    const res = await this.send('PUT', baseUrl, path, headers, body, timeoutMs);
    return this.accept<T>(baseUrl, path, headers[HEADER.nonce], res);
  }

  close(): void {
    this.agent.destroy();
    this.tlsAgent.destroy();
    this.udp?.close();
    this.udp = null;
  }
}
