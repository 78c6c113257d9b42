import type { Coordinator, CoordinatorAcquireOptions, LeaseAnswer, PeerTransport } from '../../src/ports.js';

/** Coordinator port over the `nimbus-ha witness` HTTP API (HMAC-signed through the peer transport). */
export class WitnessCoordinator implements Coordinator {
  constructor(
    private readonly url: string,
    private readonly transport: PeerTransport,
  ) {}

  describe(): string {
    return `witness ${this.url}`;
  }

  acquire(node: string, epoch: number, leaseMs: number, timeoutMs: number, signal?: AbortSignal, opts: CoordinatorAcquireOptions = {}): Promise<LeaseAnswer> {
    const body: Record<string, unknown> = { node, epoch, leaseMs };
    if (opts.holderRecord) body.holderRecord = true;
    if (opts.force) body.force = true;
    return this.transport.post<LeaseAnswer>(this.url, '/witness/acquire', body, timeoutMs, signal);
  }

  setHolders(node: string, epoch: number, holders: string[] | null, timeoutMs: number): Promise<LeaseAnswer> {
    return this.transport.post<LeaseAnswer>(this.url, '/witness/holders', { node, epoch, holders }, timeoutMs);
  }

  release(node: string, epoch: number, timeoutMs: number): Promise<LeaseAnswer> {
    return this.transport.post<LeaseAnswer>(this.url, '/witness/release', { node, epoch }, timeoutMs);
  }

  read(timeoutMs: number): Promise<LeaseAnswer> {
    return this.transport.post<LeaseAnswer>(this.url, '/witness/read', {}, timeoutMs);
  }
}
