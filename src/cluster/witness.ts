import { readFileSync } from 'node:fs';
import express from 'express';
import type { Clock, LeaseAnswer } from '../ports.js';
import { captureRawBody, requirePeerAuth } from '../peer/auth.js';
import { writeJsonDurable } from '../util/durable.js';

/** Persisted witness state: the highest epoch granted and to whom. */
interface WitnessDisk {
  epoch: number;
  holder: string | null;
  leaseMs: number;
}

/**
 * The witness: the third vote of a two-node cluster. It grants a new epoch only when no other node holds
 * an unexpired lease, and renews the lease of the current holder. Lease time runs on the witness's
 * monotonic clock from the moment it answers, so the holder (which counts from when it *sent* the
 * request) always believes its lease ends earlier than the witness does.
 */
export class WitnessState {
  private epoch = 0;
  private holder: string | null = null;
  private leaseMs = 0;
  private expiresAt = 0;

  constructor(
    private readonly clock: Clock,
    private readonly file: string | null,
    /** Upper bound of any lease, used after a restart when the last grant time is unknown. */
    private readonly maxLeaseMs = 10_000,
  ) {
    if (file) {
      try {
        const d = JSON.parse(readFileSync(file, 'utf8')) as WitnessDisk;
        this.epoch = d.epoch;
        this.holder = d.holder;
        this.leaseMs = d.leaseMs;
        // After a restart we do not know when the lease was last renewed: assume just now.
        this.expiresAt = d.holder ? clock.monotonicMs() + Math.min(Math.max(d.leaseMs, 0), this.maxLeaseMs) : 0;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      }
    }
  }

  /**
   * `now` is the instant the decision was taken at, so a refusal for a live lease always names its
   * holder and a time left above zero (the candidate retries exactly then).
   */
  private answer(granted: boolean, now: number = this.clock.monotonicMs()): LeaseAnswer {
    const remaining = this.holder ? Math.max(0, this.expiresAt - now) : 0;
    return { granted, epoch: this.epoch, holder: remaining > 0 ? this.holder : null, remainingMs: remaining };
  }

  private persist(): void {
    if (this.file) writeJsonDurable(this.file, { epoch: this.epoch, holder: this.holder, leaseMs: this.leaseMs } satisfies WitnessDisk);
  }

  acquire(node: string, epoch: number, leaseMs: number): LeaseAnswer {
    const now = this.clock.monotonicMs();
    const lease = Math.min(leaseMs, this.maxLeaseMs);
    const live = this.holder !== null && this.expiresAt > now;
    if (epoch === this.epoch && this.holder === node) {
      // Renewal (also after expiry, as long as nobody else took a higher epoch).
      this.expiresAt = now + lease;
      if (lease !== this.leaseMs) {
        this.leaseMs = lease;
        this.persist();
      }
      return this.answer(true, now);
    }
    if (epoch <= this.epoch) return this.answer(false, now);
    if (live && this.holder !== node) return this.answer(false, now);
    this.epoch = epoch;
    this.holder = node;
    this.leaseMs = lease;
    this.persist();
    this.expiresAt = now + lease;
    return this.answer(true, now);
  }

  release(node: string, epoch: number): LeaseAnswer {
    if (this.holder === node && this.epoch === epoch) {
      this.holder = null;
      this.expiresAt = 0;
      this.persist();
      return this.answer(true);
    }
    return this.answer(false);
  }

  read(): LeaseAnswer {
    return this.answer(true);
  }
}

export type WitnessReply = { status: number; body: unknown };

/** The witness's lease calls, shared by its HTTP and UDP faces. */
export function witnessHandlers(state: WitnessState): Record<string, (body: unknown) => WitnessReply> {
  return {
    '/witness/acquire': (body) => {
      const { node, epoch, leaseMs } = (body ?? {}) as { node?: unknown; epoch?: unknown; leaseMs?: unknown };
      if (typeof node !== 'string' || !Number.isInteger(epoch) || !Number.isInteger(leaseMs) || (leaseMs as number) <= 0) {
        return { status: 400, body: { error: 'USAGE', message: 'expected {node: string, epoch: integer, leaseMs: positive integer}' } };
      }
      return { status: 200, body: state.acquire(node, epoch as number, leaseMs as number) };
    },
    '/witness/release': (body) => {
      const { node, epoch } = (body ?? {}) as { node?: unknown; epoch?: unknown };
      if (typeof node !== 'string' || !Number.isInteger(epoch)) {
        return { status: 400, body: { error: 'USAGE', message: 'expected {node: string, epoch: integer}' } };
      }
      return { status: 200, body: state.release(node, epoch as number) };
    },
    '/witness/read': () => ({ status: 200, body: state.read() }),
  };
}

/**
 * HTTP face of the witness: HMAC-authenticated lease calls plus an open, read-only /health. Lease calls
 * are authenticated before their body is read (16 KB at most), their replies are signed (a `granted`
 * counts only when it verifies), and every error is the JSON `Error`. `replay` refuses requests signed
 * before this process started or before a sender's last mark.
 */
export function createWitnessApp(
  state: WitnessState,
  secret: string,
  onReject?: (reason: string) => void,
  opts: { replay?: import('../peer/replay.js').ReplayGuard } = {},
): express.Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.get('/health', (_req, res) => {
    res.json({ ok: true, ...state.read() });
  });
  app.use('/witness', requirePeerAuth(secret, { self: 'witness', replay: opts.replay, onReject: (r) => onReject?.(r) }));
  for (const [path, handler] of Object.entries(witnessHandlers(state))) {
    app.post(path, (req, res) => {
      const out = handler(req.body);
      res.status(out.status).json(out.body);
    });
  }
  app.use((_req: express.Request, res: express.Response) => {
    res.status(404).json({ error: 'NOT_FOUND', message: 'no such witness route' });
  });
  app.use((err: { status?: number }, req: express.Request, res: express.Response, _next: express.NextFunction) => {
    const status = typeof err?.status === 'number' && err.status >= 400 && err.status < 500 ? err.status : 500;
    if (!req.complete) res.set('connection', 'close');
    res.status(status).json({ error: status === 500 ? 'INTERNAL' : 'BAD_REQUEST', message: status === 500 ? 'internal error' : 'the request could not be read' });
  });
  return app;
}
