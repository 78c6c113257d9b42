import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { HaError } from '../errors.js';

/**
 * Small client for the sidecar's own API (status, admin), used by the CLI commands. Node's http
 * module, not an HTTP library (`nimbus-ha status` should start fast) nor fetch (which refuses some
 * ports, e.g. 6000). Proxy variables are not used: the sidecar's API is reached directly.
 */
export async function apiRequest<T>(method: 'GET' | 'POST', url: string, path: string, opts: { token?: string; body?: unknown; timeoutMs?: number } = {}): Promise<{ status: number; data: T }> {
  const headers: Record<string, string> = opts.token ? { authorization: `Bearer ${opts.token}` } : {};
  const body = opts.body === undefined ? undefined : JSON.stringify(opts.body);
  if (body !== undefined) {
    headers['content-type'] = 'application/json';
    headers['content-length'] = String(Buffer.byteLength(body));
  }
  const timeoutMs = opts.timeoutMs ?? 5000;
  let status: number;
  let text: string;
  try {
    const target = new URL(url.replace(/\/$/, '') + path);
    const send = target.protocol === 'https:' ? httpsRequest : httpRequest;
    ({ status, text } = await new Promise<{ status: number; text: string }>((resolve, reject) => {
      const req = send(target, { method, headers, signal: AbortSignal.timeout(timeoutMs) }, (res: IncomingMessage) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end(body);
    }));
  } catch (err) {
    const e = err as Error;
    const why = e.name === 'AbortError' || e.name === 'TimeoutError' ? `no answer within ${timeoutMs} ms` : e.message;
    throw new HaError('PEER_UNREACHABLE', `cannot reach ${url}: ${why} (is \`nimbus-ha run\` up? pass --url)`);
  }
  if (status === 401) throw new HaError('ADMIN_AUTH_FAILED', `${url} refused the admin token: pass --token or set NHA_ADMIN_TOKEN to the node's adminToken`);
  let data: unknown = text;
  try {
    data = JSON.parse(text);
  } catch {
    /* not JSON: the text as it came */
  }
  return { status, data: data as T };
}
