/**
 * One HTTPS request for the Nimbus probes with the trust a real head node needs: its frontends (8444 EC2
 * Query, 8443 WSRF) present a host certificate issued by Nimbus's own CA for the head node's hostname,
 * while the probe connects to this node's address. `caFile` is trusted (instead of the system store)
 * and `serverName` is sent as SNI and checked against the certificate. One connection per check.
 */
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';

export interface TlsOptions {
  /** PEM file of the CA that issued the frontend's certificate (Nimbus: var/ca/ca-certs/*.pem). */
  caFile?: string;
  /** Name the certificate must carry (the head node's hostname), when the URL holds an address. */
  serverName?: string;
}

export function tlsExchange(
  target: URL,
  tls: TlsOptions,
  o: { method?: string; headers?: Record<string, string>; body?: string; maxBody?: number; signal: AbortSignal },
): Promise<{ status: number; body: string }> {
  const isHttps = target.protocol === 'https:';
  const maxBody = o.maxBody ?? 64 * 1024;
  const headers: Record<string, string> = { 'user-agent': 'nimbus-ha-probe', connection: 'close', ...o.headers };
  if (o.body !== undefined) headers['content-length'] = String(Buffer.byteLength(o.body));
  const ca = isHttps && tls.caFile ? readFileSync(tls.caFile) : undefined;
  return new Promise((resolve, reject) => {
    const opts = { method: o.method ?? 'GET', agent: false as const, signal: o.signal, headers, ...(isHttps ? { ca, servername: tls.serverName } : {}) };
    const req = (isHttps ? https : http).request(target, opts, (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        if (size >= maxBody) return;
        chunks.push(c);
        size += c.length;
      });
      res.on('error', reject);
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('error', (err) => reject(new Error(`${o.method ?? 'GET'} ${target.origin}${target.pathname}${tls.serverName ? ` (as ${tls.serverName})` : ''}: ${err.message}`)));
    req.end(o.body);
  });
}
