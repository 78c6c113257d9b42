import net from 'node:net';
import type { Vip, VipContext } from '../../src/ports.js';
import { HaError } from '../../src/errors.js';

/**
 * User-space VIP: binds the advertised host:port only while this node is primary and forwards each TCP
 * connection to the local service. Works unprivileged and with both nodes on one host (only the primary
 * holds the port). Releasing closes the listener and cuts open connections so clients reconnect to the
 * new primary instead of talking to a demoted node.
 */
export class BindProxyVip implements Vip {
  private server: net.Server | null = null;
  private readonly sockets = new Set<net.Socket>();

  constructor(
    private readonly listen: { host: string; port: number },
    private readonly target: { host: string; port: number },
  ) {}

  describe(): string {
    return `${this.listen.host}:${this.listen.port} -> ${this.target.host}:${this.target.port}`;
  }

  async acquire(_ctx: VipContext): Promise<void> {
    if (this.server) return;
    const server = net.createServer((client) => this.forward(client));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host: this.listen.host, port: this.listen.port, exclusive: true }, () => {
        server.off('error', reject);
        resolve();
      });
    }).catch((err: NodeJS.ErrnoException) => {
      throw new HaError(
        err.code === 'EADDRINUSE' ? 'VIP_ADDRESS_IN_USE' : 'VIP_FAILED',
        err.code === 'EADDRINUSE'
          ? `${this.listen.host}:${this.listen.port} is already bound (another primary or process still holds it); will retry`
          : `cannot bind ${this.listen.host}:${this.listen.port}: ${err.message}`,
      );
    });
    server.on('error', () => undefined);
    this.server = server;
  }

  private forward(client: net.Socket): void {
    const upstream = net.connect({ host: this.target.host, port: this.target.port });
    this.sockets.add(client);
    this.sockets.add(upstream);
    const done = () => {
      client.destroy();
      upstream.destroy();
      this.sockets.delete(client);
      this.sockets.delete(upstream);
    };
    client.on('error', done).on('close', done);
    upstream.on('error', done).on('close', done);
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    client.pipe(upstream);
    upstream.pipe(client);
  }

  async release(_ctx: VipContext): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = null;
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  async held(): Promise<boolean> {
    return this.server !== null && this.server.listening;
  }

  async close(): Promise<void> {
    await this.release({ node: '', epoch: 0, role: 'standby', reason: 'close' });
  }
}
