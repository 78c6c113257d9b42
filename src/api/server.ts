import http from 'node:http';
import https from 'node:https';
import type { RequestListener } from 'node:http';
import type { TlsMaterial } from '../peer/tls.js';

export interface ListeningServer {
  server: http.Server;
  port: number;
  /** Base URL of the server as bound (http:// or https://). */
  url: string;
}

/**
 * TLS options of a server (the node API, the witness): present the certificate, ask every client for
 * one and check it against the CA. The handshake does not refuse a client without a certificate, so
 * load balancers and monitoring keep reaching the open routes; the peer and witness routes refuse such
 * a client before anything else (src/peer/auth.ts). TLS 1.2 at least.
 */
export function serverTlsOptions(tls: TlsMaterial): https.ServerOptions {
  return { cert: tls.cert, key: tls.key, ca: tls.ca, requestCert: true, rejectUnauthorized: false, minVersion: 'TLSv1.2' };
}

/** Create the HTTP server of an app: https with the TLS material, plain http without. */
export function createServer(app: RequestListener, tls: TlsMaterial | null): http.Server {
  return tls ? https.createServer(serverTlsOptions(tls), app) : http.createServer(app);
}

/**
 * Listen on host:port (0: any free port); resolves once bound, rejects on a bind error. Errors after that
 * (accept failing for lack of file descriptors or memory) go to `onError`: the server keeps listening,
 * and an unheard server error would stop the process.
 */
export function listenServer(
  app: RequestListener,
  listen: { host: string; port: number },
  tls: TlsMaterial | null,
  onError: (err: Error) => void = () => undefined,
): Promise<ListeningServer> {
  const server = createServer(app, tls);
  return new Promise((resolve, reject) => {
    const onBindError = (err: Error) => reject(err);
    server.once('error', onBindError);
    server.listen(listen.port, listen.host, () => {
      server.off('error', onBindError);
      server.on('error', onError);
      server.keepAliveTimeout = 65_000;
      const addr = server.address();
      const port = typeof addr === 'object' && addr ? addr.port : listen.port;
      const host = listen.host.includes(':') ? `[${listen.host}]` : listen.host;
      resolve({ server, port, url: `${tls ? 'https' : 'http'}://${host}:${port}` });
    });
  });
}
