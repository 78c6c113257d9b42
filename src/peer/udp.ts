import dgram from 'node:dgram';
import { createHmac, createSecretKey, randomBytes, timingSafeEqual, type KeyObject } from 'node:crypto';
import { isIP } from 'node:net';
import { HaError, type ErrorCode } from '../errors.js';
import { MAX_SKEW_MS, NonceCache } from './auth.js';
import { ReplayGuard } from './replay.js';
import { keysOf, signingKey, type KeyInput, type KeyUse } from './keyring.js';
import { canTalk, incompatibleBody, learnVersion, ownProtocol, protocolProblem, statedVersions, versionFor } from './protocol.js';

/**
 * Signed request/reply datagrams for the sidecar's hot path: heartbeats between the nodes and lease
 * renewals with the witness. One datagram carries a whole request and one a whole reply, so a beat costs
 * two small packets and no connection, parser or router work.
 *
 *   datagram = "NHA1 " + hex(HMAC-SHA256(secret, "nha-udp-1\n" + json)) + " " + json
 *   request  json = { k: "q", id, n: sender node, ts: wall ms, p: path, b: body, v, m, r }
 *   reply    json = { k: "r", re: request id, n: sender node, ts, s: status, b: body, v, m, r }
 *
 * `v` (the version the frame is written in), `m` (the sender's own version) and `r` (its release) are
 * absent in version 1 (src/peer/protocol.ts). A request the receiver cannot read gets a signed reply
 * with status 400 and `PEER_INCOMPATIBLE`; a reply it cannot read fails the request with that code.
 *
 * Requests are accepted within the same 30 s clock window as HTTP peer requests, never when signed
 * before the receiver started (ReplayGuard, which also survives restarts) and never twice (the
 * random id is the nonce); a reply is accepted only for a request still waiting, so neither can be
 * replayed. A receiver that cannot verify a request answers with an unsigned refusal; the sender notes it
 * for the error message but never trusts it to end the wait early (anyone can forge an unsigned packet).
 */

const MAGIC = 'NHA1';
const DOMAIN = 'nha-udp-1\n';
/** Largest payload a single IPv4 UDP datagram can carry. */
export const MAX_DATAGRAM = 65_507;

interface RequestFrame {
  k: 'q';
  id: string;
  n: string;
  ts: number;
  p: string;
  b: unknown;
  v?: number;
  m?: number;
  r?: string;
}

interface ReplyFrame {
  k: 'r';
  re: string;
  n: string;
  ts: number;
  s: number;
  b: unknown;
  v?: number;
  m?: number;
  r?: string;
}

/** The protocol fields of a frame written in `v` (none from a release of version 1). */
function versionFields(v: number): { v?: number; m?: number; r?: string } {
  const me = ownProtocol();
  return me.version >= 2 ? { v, m: me.version, r: me.release } : {};
}

/** The error of a request given up through its AbortSignal (the reason, when it is an HaError). */
function abortError(url: string, path: string, signal: AbortSignal): HaError {
  const r: unknown = signal.reason;
  if (r instanceof HaError) return r;
  return new HaError('PEER_UNREACHABLE', `${url}${path}: ${r instanceof Error && r.name !== 'AbortError' ? r.message : 'request abandoned'}`);
}

/** HMAC keys prepared once per secret (preparing a key per datagram shows up in an idle profile). */
const keys = new Map<string, KeyObject>();
function keyOf(secret: string): KeyObject {
  let k = keys.get(secret);
  if (!k) {
    k = createSecretKey(Buffer.from(secret, 'utf8'));
    if (keys.size > 16) keys.clear();
    keys.set(secret, k);
  }
  return k;
}

function sign(secret: string, json: string): string {
  return createHmac('sha256', keyOf(secret)).update(DOMAIN).update(json).digest('hex');
}

function encode(secret: KeyInput, frame: RequestFrame | ReplyFrame): Buffer {
  const json = JSON.stringify(frame);
  return Buffer.from(`${MAGIC} ${sign(signingKey(secret), json)} ${json}`, 'utf8');
}

/** `key`: the one of the receiver's keys the datagram was signed with (a reply is signed with it too). */
type Decoded = { ok: true; frame: RequestFrame | ReplyFrame; key: string } | { ok: false; reason: string; refusal?: { re: string; reason: string } };

function decode(secret: KeyInput, msg: Buffer): Decoded {
  const text = msg.toString('utf8');
  if (text.startsWith('NHA1-REFUSED ')) {
    const [, re, ...why] = text.split(' ');
    return { ok: false, reason: 'refusal', refusal: { re: re ?? '', reason: why.join(' ') } };
  }
  if (!text.startsWith(`${MAGIC} `)) return { ok: false, reason: 'not a nimbus-ha datagram' };
  const sp = text.indexOf(' ', MAGIC.length + 1);
  if (sp < 0) return { ok: false, reason: 'truncated datagram' };
  const sig = Buffer.from(text.slice(MAGIC.length + 1, sp), 'hex');
  const json = text.slice(sp + 1);
  const key = keysOf(secret).find((k) => {
    const expected = Buffer.from(sign(k, json), 'hex');
    return sig.length === expected.length && timingSafeEqual(sig, expected);
  });
  if (key === undefined) return { ok: false, reason: 'bad signature (wrong shared secret?)' };
  let frame: RequestFrame | ReplyFrame;
  try {
    frame = JSON.parse(json) as RequestFrame | ReplyFrame;
  } catch {
    return { ok: false, reason: 'malformed datagram' };
  }
  if (!frame || (frame.k !== 'q' && frame.k !== 'r') || typeof frame.n !== 'string' || typeof frame.ts !== 'number') {
    return { ok: false, reason: 'malformed datagram' };
  }
  return { ok: true, frame, key };
}

/** A request's id as it appears in a datagram that could not be verified (to address a refusal). */
function idOf(msg: Buffer): string | null {
  const m = /"id":"([0-9a-f]{24})"/.exec(msg.subarray(0, 4096).toString('utf8'));
  return m ? m[1] : null;
}

export function parseUdpUrl(url: string): { host: string; port: number } {
  const u = new URL(url);
  if (u.protocol !== 'udp:' || !u.port) throw new HaError('USAGE', `expected udp://host:port, got ${url}`);
  return { host: u.hostname.replace(/^\[|\]$/g, ''), port: Number(u.port) };
}

/** The UDP address of an HTTP base URL: same host and port (heartbeats and API share the port number). */
export function udpUrlOf(httpUrl: string): string {
  const u = new URL(httpUrl);
  const port = u.port || (u.protocol === 'https:' ? '443' : '80');
  return `udp://${u.hostname}:${port}`;
}

export type UdpHandler = (body: unknown, from: string) => { status: number; body: unknown };

/** Told each authenticated request's protocol version and release, and why it is refused (or null). */
export type ProtocolListener = (node: string, protocol: number, release: string | null, problem: string | null) => void;

/** Receives signed requests on one UDP address and answers them from the same socket. */
export class UdpServer {
  private socket: dgram.Socket | null = null;
  private readonly nonces = new NonceCache();
  private readonly rejectLog = new Map<string, { at: number; suppressed: number }>();
  private refusalSecond = 0;
  private refusals = 0;

  constructor(
    /** This node's name: a request claiming it is a reflection and refused (null: no such check). */
    private readonly self: string | null,
    /** The lease key(s): requests signed with any are accepted, each answered with the key it used. */
    private readonly secret: KeyInput,
    private readonly routes: Record<string, UdpHandler>,
    /** Called for rejected datagrams, at most once per reason and 10 s (with the count suppressed). */
    private readonly onReject?: (reason: string, from: string) => void,
    /** Refuses requests signed before this receiver started (share it with the HTTP receiver). */
    private readonly replay: ReplayGuard = new ReplayGuard(null),
    /** Records which key each peer signs with (status). */
    private readonly keyUse?: KeyUse,
    private readonly onProtocol?: ProtocolListener,
  ) {}

  async listen(host: string, port: number): Promise<number> {
    const socket = dgram.createSocket({ type: isIP(host) === 6 ? 'udp6' : 'udp4', reuseAddr: false });
    socket.on('message', (msg, rinfo) => this.onMessage(socket, msg, rinfo));
    socket.on('error', () => undefined);
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(port, host, () => {
        socket.off('error', reject);
        resolve();
      });
    });
    socket.unref();
    this.socket = socket;
    return socket.address().port;
  }

  private reject(socket: dgram.Socket, msg: Buffer, rinfo: dgram.RemoteInfo, reason: string): void {
    const from = `${rinfo.address}:${rinfo.port}`;
    const now = Date.now();
    const seen = this.rejectLog.get(reason);
    if (!seen || now - seen.at > 10_000) {
      const extra = seen && seen.suppressed ? ` (${seen.suppressed} more since the last report)` : '';
      this.rejectLog.set(reason, { at: now, suppressed: 0 });
      if (this.rejectLog.size > 64) this.rejectLog.delete(this.rejectLog.keys().next().value as string);
      this.onReject?.(reason + extra, from);
    } else seen.suppressed++;
    // Refusals are smaller than what they answer and limited to 20 a second, so spoofed requests cannot
    // turn the sidecar into an amplifier.
    const id = idOf(msg);
    const second = Math.floor(now / 1000);
    if (second !== this.refusalSecond) {
      this.refusalSecond = second;
      this.refusals = 0;
    }
    if (!id) return;
    const refusal = Buffer.from(`NHA1-REFUSED ${id} ${reason}`);
    if (refusal.length <= msg.length && this.refusals++ < 20) socket.send(refusal, rinfo.port, rinfo.address);
  }

  private onMessage(socket: dgram.Socket, msg: Buffer, rinfo: dgram.RemoteInfo): void {
    const d = decode(this.secret, msg);
    if (!d.ok) {
      if (!d.refusal) this.reject(socket, msg, rinfo, d.reason);
      return;
    }
    const f = d.frame;
    if (f.k !== 'q') return; // replies belong to clients
    const now = Date.now();
    if (Math.abs(now - f.ts) > MAX_SKEW_MS) return this.reject(socket, msg, rinfo, 'timestamp outside the allowed window (check clocks)');
    if (this.self !== null && f.n === this.self) return this.reject(socket, msg, rinfo, 'request claims to come from this node (reflected?)');
    const stale = this.replay.check(f.n, f.ts);
    if (stale) return this.reject(socket, msg, rinfo, stale);
    if (typeof f.id !== 'string' || !this.nonces.use(f.id, now)) return this.reject(socket, msg, rinfo, 'replayed request');
    this.replay.accepted(f.n, f.ts);
    const stated = statedVersions(f.v, f.m);
    const problem = protocolProblem(stated.v);
    // Refused, but the sender can write in this node's version: it will, once told (negotiation).
    this.onProtocol?.(f.n, stated.max, typeof f.r === 'string' ? f.r : null, problem && !canTalk(stated.max) ? problem : null);
    const handler = typeof f.p === 'string' && Object.hasOwn(this.routes, f.p) ? this.routes[f.p] : undefined;
    let out: { status: number; body: unknown };
    try {
      if (problem) out = { status: 400, body: incompatibleBody(problem) };
      else out = handler ? handler(f.b, f.n) : { status: 404, body: { error: 'NOT_FOUND', message: `no UDP route ${f.p}` } };
    } catch (err) {
      out = { status: 500, body: { error: 'INTERNAL', message: (err as Error).message } };
    }
    this.keyUse?.used(f.n, d.key, now);
    const reply = encode(d.key, { k: 'r', re: f.id, n: this.self ?? 'witness', ts: Date.now(), s: out.status, b: out.body, ...versionFields(problem ? ownProtocol().version : Math.min(ownProtocol().version, stated.v)) });
    if (reply.length > MAX_DATAGRAM) return;
    socket.send(reply, rinfo.port, rinfo.address);
  }

  close(): void {
    try {
      this.socket?.close();
    } catch {
      // already closed
    }
    this.socket = null;
  }
}

interface Pending {
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
  url: string;
  path: string;
  refused: string | null;
}

/**
 * Sends signed requests over UDP and matches replies. One connected socket per target, so an ICMP
 * "port unreachable" (the peer's process is gone) fails the waiting requests at once.
 */
export class UdpClient {
  private readonly sockets = new Map<string, Promise<dgram.Socket>>();
  private readonly pending = new Map<string, Pending>();
  private closed = false;
  /** Request ids: a random per-process prefix and a counter (unique, so they serve as nonces). */
  private readonly idPrefix = randomBytes(8).toString('hex');
  private seq = 0;

  constructor(
    private readonly node: string,
    /** Signs with the first key; a reply signed with any of them is accepted. */
    private readonly secret: KeyInput,
  ) {}

  private socketFor(url: string): Promise<dgram.Socket> {
    let s = this.sockets.get(url);
    if (!s) {
      const { host, port } = parseUdpUrl(url);
      s = new Promise<dgram.Socket>((resolve, reject) => {
        const socket = dgram.createSocket(isIP(host) === 6 ? 'udp6' : 'udp4');
        socket.on('message', (msg) => this.onMessage(msg));
        socket.on('error', (err) => this.failAll(url, err));
        socket.once('connect', () => {
          socket.unref();
          resolve(socket);
        });
        socket.connect(port, host, (err?: Error) => {
          if (err) reject(err);
        });
      }).catch((err: Error) => {
        this.sockets.delete(url);
        throw err;
      });
      this.sockets.set(url, s);
    }
    return s;
  }

  private failAll(url: string, err: Error): void {
    for (const [id, p] of this.pending) {
      if (p.url !== url) continue;
      this.pending.delete(id);
      clearTimeout(p.timer);
      p.reject(new HaError('PEER_UNREACHABLE', `${url}${p.path}: ${err.message}`));
    }
  }

  private onMessage(msg: Buffer): void {
    const d = decode(this.secret, msg);
    if (!d.ok) {
      if (d.refusal) {
        const p = this.pending.get(d.refusal.re);
        if (p) p.refused = d.refusal.reason;
      }
      return;
    }
    const f = d.frame;
    if (f.k !== 'r') return;
    const p = this.pending.get(f.re);
    if (!p) return; // late, duplicated or replayed
    this.pending.delete(f.re);
    clearTimeout(p.timer);
    // The reply states its sender's own version: what to write to it from now on.
    const stated = statedVersions(f.v, f.m);
    learnVersion(p.url, stated.max);
    const problem = protocolProblem(stated.v);
    if (problem) p.reject(new HaError('PEER_INCOMPATIBLE', `${p.url}${p.path}: ${problem}`, { body: { protocol: stated.max, release: f.r ?? null } }));
    else if (f.s >= 200 && f.s < 300) p.resolve(f.b);
    else {
      const b = (f.b ?? {}) as { error?: string; message?: string; protocol?: unknown };
      const code = (b.error as ErrorCode | undefined) || 'PEER_UNREACHABLE';
      const relearned = code === 'PEER_INCOMPATIBLE' && typeof b.protocol === 'number' && learnVersion(p.url, b.protocol);
      p.reject(new HaError(code, `${p.url}${p.path}: status ${f.s} ${b.message ?? ''}`.trim(), { status: f.s, body: f.b, relearned }));
    }
  }

  /**
   * Send `body` to `path` at `url` (udp://host:port) and wait for the signed reply (until the timeout or
   * `signal`). Refused for a version the refusal taught this node to avoid: sent once more, in the peer's.
   */
  async post<T>(url: string, path: string, body: unknown, timeoutMs: number, signal?: AbortSignal): Promise<T> {
    const sentIn = versionFor(url);
    try {
      return await this.postOnce<T>(url, path, body, timeoutMs, signal);
    } catch (err) {
      // Refused for its version, and this node writes to that peer in another one now (this refusal, or
      // one to a request sent alongside, taught it): once more, in the peer's.
      if (err instanceof HaError && err.code === 'PEER_INCOMPATIBLE' && (err.details?.relearned === true || versionFor(url) !== sentIn)) return this.postOnce<T>(url, path, body, timeoutMs, signal);
      throw err;
    }
  }

  private async postOnce<T>(url: string, path: string, body: unknown, timeoutMs: number, signal?: AbortSignal): Promise<T> {
    if (this.closed) throw new HaError('PEER_UNREACHABLE', `${url}${path}: client closed`);
    this.seq = (this.seq + 1) % 0x1_0000_0000;
    const id = this.idPrefix + this.seq.toString(16).padStart(8, '0');
    const datagram = encode(this.secret, { k: 'q', id, n: this.node, ts: Date.now(), p: path, b: body, ...versionFields(versionFor(url)) });
    if (datagram.length > MAX_DATAGRAM) throw new HaError('USAGE', `${path}: message of ${datagram.length} bytes does not fit a UDP datagram`);
    const socket = await this.socketFor(url).catch((err: Error) => {
      throw new HaError('PEER_UNREACHABLE', `${url}${path}: ${err.message}`);
    });
    // Given up before the call or while the socket was being opened: no abort event will come.
    if (signal?.aborted) throw abortError(url, path, signal);
    return new Promise<T>((resolve, reject) => {
      const fail = (why: () => HaError) => {
        const p = this.pending.get(id);
        if (!p) return;
        this.pending.delete(id);
        clearTimeout(p.timer);
        signal?.removeEventListener('abort', onAbort);
        if (p.refused) reject(new HaError('PEER_AUTH_FAILED', `${url} refused our datagram (${p.refused}): check that both nodes use the same secret`));
        else reject(why());
      };
      const onAbort = () => fail(() => abortError(url, path, signal!));
      const timer = setTimeout(() => fail(() => new HaError('PEER_UNREACHABLE', `${url}${path}: timeout of ${timeoutMs}ms exceeded`)), timeoutMs);
      const settle = signal
        ? (fn: (v: unknown) => void) => (v: unknown) => {
            signal.removeEventListener('abort', onAbort);
            fn(v);
          }
        : (fn: (v: unknown) => void) => fn;
      signal?.addEventListener('abort', onAbort, { once: true });
      this.pending.set(id, { resolve: settle(resolve as (v: unknown) => void), reject: settle(reject), timer, url, path, refused: null });
      // No callback: a send that completes at once then costs no completion callback; errors (an ICMP
      // "port unreachable" on this connected socket) arrive as 'error' events and fail the waiters.
      socket.send(datagram);
    });
  }

  close(): void {
    this.closed = true;
    for (const [id, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(new HaError('PEER_UNREACHABLE', `${p.url}${p.path}: client closed`));
      this.pending.delete(id);
    }
    for (const s of this.sockets.values()) void s.then((sock) => sock.close()).catch(() => undefined);
    this.sockets.clear();
  }
}
