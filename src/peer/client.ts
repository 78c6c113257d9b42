import http from 'node:http';
import https from 'node:https';
import type { Readable } from 'node:stream';
import type { PeerTransport } from '../ports.js';
import { HaError, type ErrorCode } from '../errors.js';
import { HEADER, isLeasePath, signRequest, STREAM_BODY, verifyReply } from './auth.js';
import { UdpClient } from './udp.js';
import { PROTOCOL_HEADER, PROTOCOL_MAX_HEADER, RELEASE_HEADER, learnVersion, protocolHeaders, protocolProblem, statedVersions, versionFor } from './protocol.js';
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
  private tlsAgent: https.Agent;
  /** Signed datagrams for udp:// targets (heartbeats, witness lease calls). */
  private udp: UdpClient | null = null;
  private tls: TlsMaterial | null;
  /** Agents replaced by a certificate reload, closed once their requests had time to finish. */
  private readonly retired = new Set<https.Agent>();

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
    this.tlsAgent = tlsAgentFor(this.tls);
  }

  /**
   * Renewed certificate, key or CA (TlsReloader): new connections present and check against them. Open
   * keep-alive connections of the old agent serve the requests already on them and are closed a minute later.
   */
  setTls(tls: TlsMaterial): void {
    const old = this.tlsAgent;
    this.tls = tls;
    this.tlsAgent = tlsAgentFor(tls);
    this.retired.add(old);
    const t = setTimeout(() => {
      this.retired.delete(old);
      old.destroy();
    }, 60_000);
    t.unref();
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
        // A failed request does not end its source (pipe only detaches): close it, or a failing push
        // keeps a file descriptor open for good.
        req.on('close', () => {
          if (!body.readableEnded) body.destroy();
        });
        body.pipe(req);
      }
    });
  }

  /** The body of a successful, verified reply; throws for an error or an unverified reply. */
  private accept<T>(baseUrl: string, path: string, nonce: string, res: RawResponse): T {
    if (res.status >= 400) this.fail(baseUrl, path, res, nonce);
    const bad = verifyReply(this.keyFor(path), res.headers, nonce, res.status, res.body);
    if (bad) throw new HaError('PEER_AUTH_FAILED', `${baseUrl}${path}: ${bad}: check that both ends use the same secret and run this version`);
    replyVersionCheck(baseUrl, path, res.headers);
    return (res.body.length ? JSON.parse(res.body.toString('utf8')) : null) as T;
  }

  /**
   * Throws the error an answer of 400 or above stands for. A `PEER_INCOMPATIBLE` refusal counts only
   * when it is signed (it proves the peer alive); an unsigned one is an authentication failure.
   */
  private fail(baseUrl: string, path: string, res: Pick<RawResponse, 'status' | 'body'> & { headers?: http.IncomingHttpHeaders }, nonce?: string): never {
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
    let code = (obj.error as ErrorCode | undefined) || 'PEER_UNREACHABLE';
    let relearned = false;
    if (code === 'PEER_INCOMPATIBLE') {
      if (nonce === undefined || !res.headers || verifyReply(this.keyFor(path), res.headers, nonce, res.status, res.body) !== null) code = 'PEER_AUTH_FAILED';
      else {
        // The refusal states the peer's own version: write in it from now on when this node can.
        const theirs = (obj as { protocol?: unknown }).protocol;
        if (typeof theirs === 'number') relearned = learnVersion(baseUrl, theirs);
      }
    }
    throw new HaError(code, `${baseUrl}${path}: HTTP ${res.status} ${obj.message ?? ''}`.trim(), { status: res.status, body: data, relearned });
  }

  async post<T>(baseUrl: string, path: string, body: unknown, timeoutMs: number, signal?: AbortSignal): Promise<T> {
    if (baseUrl.startsWith('udp:')) {
      // Datagrams carry lease traffic only (heartbeats, witness calls): the lease key.
      this.udp ??= new UdpClient(this.node, this.secret);
      return this.udp.post<T>(baseUrl, path, body ?? {}, timeoutMs, signal);
    }
    const data = JSON.stringify(body ?? {});
    const once = async () => {
      const headers: Record<string, string> = {
        'content-type': 'application/json',
        'content-length': String(Buffer.byteLength(data)),
        ...protocolHeaders(versionFor(baseUrl)),
        ...signRequest(this.keyFor(path), this.node, 'POST', path, data),
      };
      const res = await this.send('POST', baseUrl, path, headers, data, timeoutMs, signal);
      return this.accept<T>(baseUrl, path, headers[HEADER.nonce], res);
    };
    const sentIn = versionFor(baseUrl);
    try {
      return await once();
    } catch (err) {
      // Refused for a version the peer's refusal (or one to a request sent alongside) taught this node
      // to avoid: once more, in the peer's.
      if (err instanceof HaError && err.code === 'PEER_INCOMPATIBLE' && (err.details?.relearned === true || versionFor(baseUrl) !== sentIn)) return once();
      throw err;
    }
  }

  /** GET a streamed response (e.g. a base backup) from the peer. */
  getStream(baseUrl: string, path: string, timeoutMs: number): Promise<Readable> {
    const headers = { ...protocolHeaders(versionFor(baseUrl)), ...signRequest(this.keyFor(path), this.node, 'GET', path, '') };
    return new Promise((resolve, reject) => {
      const req = this.open('GET', baseUrl, path, headers, timeoutMs);
      req.on('error', (err) => reject(unreachable(baseUrl, path, err)));
      req.on('response', (res) => {
        if ((res.statusCode ?? 0) < 400) {
          const bad = verifyReply(this.keyFor(path), res.headers, headers[HEADER.nonce], res.statusCode ?? 0, STREAM_BODY);
          if (bad) {
            res.destroy();
            reject(new HaError('PEER_AUTH_FAILED', `${baseUrl}${path}: ${bad}: check that both ends use the same secret and run this version`));
            return;
          }
          try {
            replyVersionCheck(baseUrl, path, res.headers);
          } catch (err) {
            res.destroy();
            reject(err);
            return;
          }
          resolve(res);
          return;
        }
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          try {
            this.fail(baseUrl, path, { status: res.statusCode ?? 0, body: Buffer.concat(chunks), headers: res.headers }, headers[HEADER.nonce]);
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
      ...protocolHeaders(versionFor(baseUrl)),
      ...signRequest(this.keyFor(path), this.node, 'PUT', path, STREAM_BODY),
    };
    const res = await this.send('PUT', baseUrl, path, headers, body, timeoutMs);
    return this.accept<T>(baseUrl, path, headers[HEADER.nonce], res);
  }

  close(): void {
    this.agent.destroy();
    this.tlsAgent.destroy();
    for (const a of this.retired) a.destroy();
    this.retired.clear();
    this.udp?.close();
    this.udp = null;
  }
}

/**
 * A verified answer states the version it is written in and its sender's own: the latter says what to
 * write to that peer from now on; an answer written in a version this node does not read is not read.
 */
function replyVersionCheck(baseUrl: string, path: string, headers: http.IncomingHttpHeaders): void {
  const h = (k: string) => {
    const v = headers[k];
    return Array.isArray(v) ? v[0] : v;
  };
  const stated = statedVersions(h(PROTOCOL_HEADER), h(PROTOCOL_MAX_HEADER));
  learnVersion(baseUrl, stated.max);
  const problem = protocolProblem(stated.v);
  if (problem) throw new HaError('PEER_INCOMPATIBLE', `${baseUrl}${path}: ${problem}`, { body: { protocol: stated.max, release: h(RELEASE_HEADER) ?? null } });
}

function tlsAgentFor(tls: TlsMaterial | null): https.Agent {
  return new https.Agent({
    keepAlive: true,
    maxSockets: 16,
    keepAliveMsecs: 1000,
    ...(tls ? { ca: tls.ca, cert: tls.cert, key: tls.key, minVersion: 'TLSv1.2' as const } : {}),
  });
}
