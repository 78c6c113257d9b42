import http from 'node:http';
import type { Readable } from 'node:stream';
import axios, { type AxiosInstance } from 'axios';
import type { PeerTransport } from '../ports.js';
import { HaError } from '../errors.js';
import { signRequest, STREAM_BODY } from './auth.js';

/**
 * Signed HTTP client for peer and witness requests, with keep-alive so a heartbeat costs one small
 * request on an open connection. One instance per sidecar.
 */
export class PeerClient implements PeerTransport {
  private readonly http: AxiosInstance;
  private readonly agent: http.Agent;

  constructor(
    private readonly node: string,
    private readonly secret: string,
  ) {
    this.agent = new http.Agent({ keepAlive: true, maxSockets: 16, keepAliveMsecs: 1000 });
    this.http = axios.create({
      httpAgent: this.agent,
      proxy: false,
      validateStatus: () => true,
      maxRedirects: 0,
      transitional: { clarifyTimeoutError: true },
    });
  }

  async post<T>(baseUrl: string, path: string, body: unknown, timeoutMs: number): Promise<T> {
    const data = JSON.stringify(body ?? {});
    const headers = { 'content-type': 'application/json', ...signRequest(this.secret, this.node, 'POST', path, data) };
    let res;
    try {
      res = await this.http.post(baseUrl.replace(/\/$/, '') + path, data, {
        headers,
        timeout: timeoutMs,
        signal: AbortSignal.timeout(timeoutMs + 50),
        responseType: 'json',
        transformResponse: [(d) => (typeof d === 'string' && d ? safeJson(d) : d)],
      });
    } catch (err) {
      throw new HaError('PEER_UNREACHABLE', `${baseUrl}${path}: ${(err as Error).message}`);
    }
    if (res.status === 401) {
      throw new HaError('PEER_AUTH_FAILED', `${baseUrl} refused our signature: check that both nodes use the same secret`);
    }
    if (res.status >= 400) {
      const msg = (res.data && typeof res.data === 'object' && 'message' in res.data ? (res.data as { message: string }).message : '') || `HTTP ${res.status}`;
      const code = (res.data && typeof res.data === 'object' && 'error' in res.data ? String((res.data as { error: string }).error) : '');
      throw new HaError((code as never) || 'PEER_UNREACHABLE', `${baseUrl}${path}: ${msg}`, { status: res.status, body: res.data });
    }
    return res.data as T;
  }

  /** GET a streamed response (e.g. a base backup) from the peer. */
  async getStream(baseUrl: string, path: string, timeoutMs: number): Promise<Readable> {
    const headers = signRequest(this.secret, this.node, 'GET', path, '');
    const res = await this.http.get(baseUrl.replace(/\/$/, '') + path, { headers, timeout: timeoutMs, responseType: 'stream' });
    if (res.status >= 400) {
      const chunks: Buffer[] = [];
      for await (const c of res.data as Readable) chunks.push(c as Buffer);
      throw new HaError(res.status === 401 ? 'PEER_AUTH_FAILED' : 'PEER_UNREACHABLE', `${baseUrl}${path}: HTTP ${res.status} ${Buffer.concat(chunks).toString().slice(0, 300)}`);
    }
    return res.data as Readable;
  }

  /** PUT a streamed body; the route must accept STREAM bodies and check a checksum in the signed path. */
  async putStream<T>(baseUrl: string, path: string, body: Readable, size: number, timeoutMs: number): Promise<T> {
    const headers = { 'content-type': 'application/octet-stream', 'content-length': String(size), ...signRequest(this.secret, this.node, 'PUT', path, STREAM_BODY) };
    const res = await this.http.put(baseUrl.replace(/\/$/, '') + path, body, { headers, timeout: timeoutMs, maxBodyLength: Infinity, maxContentLength: Infinity });
    if (res.status >= 400) throw new HaError(res.status === 401 ? 'PEER_AUTH_FAILED' : 'PEER_UNREACHABLE', `${baseUrl}${path}: HTTP ${res.status} ${JSON.stringify(res.data).slice(0, 300)}`);
    return res.data as T;
  }

  close(): void {
    this.agent.destroy();
  }
}

function safeJson(s: string): unknown {
  try {
    return JSON.parse(s);
  } catch {
    return { message: s.slice(0, 300) };
  }
}
