import axios from 'axios';
import { HaError } from '../errors.js';

/** Small client for the sidecar's own API (status, admin), used by the CLI commands. */
export async function apiRequest<T>(method: 'GET' | 'POST', url: string, path: string, opts: { token?: string; body?: unknown; timeoutMs?: number } = {}): Promise<{ status: number; data: T }> {
  try {
    const res = await axios.request({
      method,
      url: url.replace(/\/$/, '') + path,
      data: opts.body,
      headers: opts.token ? { authorization: `Bearer ${opts.token}` } : {},
      timeout: opts.timeoutMs ?? 5000,
      validateStatus: () => true,
      proxy: false,
    });
    if (res.status === 401) throw new HaError('ADMIN_AUTH_FAILED', `${url} refused the admin token: pass --token or set NHA_ADMIN_TOKEN to the node's adminToken`);
    return { status: res.status, data: res.data as T };
  } catch (err) {
    if (err instanceof HaError) throw err;
    throw new HaError('PEER_UNREACHABLE', `cannot reach ${url}: ${(err as Error).message} (is \`nimbus-ha run\` up? pass --url)`);
  }
}
