import { readFileSync } from 'node:fs';
import express from 'express';
import type { Clock, LeaseAnswer } from '../ports.js';
import { requirePeerAuth } from '../peer/auth.js';
import type { KeyInput, KeyUse } from '../peer/keyring.js';
import { writeJsonDurable } from '../util/durable.js';

/** Persisted witness state: the highest epoch granted and to whom, and the data-holder record. */
interface WitnessDisk {
  epoch: number;
  holder: string | null;
  leaseMs: number;
  /** Nodes holding every acknowledged write (null: no synchronous data path, no record kept). */
  holders?: string[] | null;
}

/** Options of an acquire for a new epoch. */
export interface AcquireOptions {
  /**
   * The candidate's cluster keeps the data-holder record (some data path is synchronous): on a grant
   * the record becomes [candidate] before anything else happens, so the new primary may acknowledge
   * writes alone.
   */
  holderRecord?: boolean;
  /**
   * The operator accepted data loss (`nimbus-ha promote --accept-data-loss`): grant even though the
   * candidate is not in the record. A live lease of another node is still never overridden.
   */
  force?: boolean;
}

/**
 * The witness: the third vote of a two-node cluster. It grants a new epoch only when no other node holds
 * an unexpired lease, and renews the lease of the current holder. Lease time runs on the witness's
 * monotonic clock from the moment it answers, so the holder (which counts from when it *sent* the
 * request) always believes its lease ends earlier than the witness does.
 *
 * It also keeps the durable data-holder record (Patroni's `/sync` key): the nodes known to hold every
 * acknowledged write. A new epoch goes only to a node in the record; only the lease holder at the
 * current epoch changes it, and it must stay in it. Shrinking the record is always safe; the primary adds
 * its standby only once commits wait for it and it has everything acknowledged before.
 */
export class WitnessState {
  private epoch = 0;
  private holder: string | null = null;
  private leaseMs = 0;
  private expiresAt = 0;
  private holders: string[] | null = null;

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
        this.holders = Array.isArray(d.holders) ? d.holders.filter((x) => typeof x === 'string') : null;
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
  private answer(granted: boolean, now: number = this.clock.monotonicMs(), reason?: LeaseAnswer['reason']): LeaseAnswer {
    const remaining = this.holder ? Math.max(0, this.expiresAt - now) : 0;
    const a: LeaseAnswer = { granted, epoch: this.epoch, holder: remaining > 0 ? this.holder : null, remainingMs: remaining, holders: this.holders ? [...this.holders] : null };
    if (reason) a.reason = reason;
    return a;
  }

  private persist(): void {
    if (this.file) writeJsonDurable(this.file, { epoch: this.epoch, holder: this.holder, leaseMs: this.leaseMs, holders: this.holders } satisfies WitnessDisk);
  }

  acquire(node: string, epoch: number, leaseMs: number, opts: AcquireOptions = {}): LeaseAnswer {
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
    if (epoch <= this.epoch) return this.answer(false, now, 'stale-epoch');
    if (live && this.holder !== node) return this.answer(false, now, 'lease-held');
    if (this.holders !== null && !this.holders.includes(node) && !opts.force) return this.answer(false, now, 'not-a-holder');
    this.epoch = epoch;
    this.holder = node;
    this.leaseMs = lease;
    // Before the new primary acknowledges anything alone, the record says it is the only holder.
    if (opts.holderRecord || opts.force || this.holders !== null) this.holders = [node];
    this.persist();
    this.expiresAt = now + lease;
    return this.answer(true, now);
  }

  /**
   * The primary (lease holder at the current epoch) sets the data-holder record: itself plus the
   * standbys that hold every acknowledged write, or null when no data path is synchronous any more.
   */
  setHolders(node: string, epoch: number, holders: string[] | null): LeaseAnswer {
    const now = this.clock.monotonicMs();
    if (epoch !== this.epoch || this.holder !== node) return this.answer(false, now, 'not-the-primary');
    if (holders !== null && !holders.includes(node)) return this.answer(false, now, 'primary-not-in-record');
    const next = holders === null ? null : [...new Set(holders)].sort();
    if (JSON.stringify(next) !== JSON.stringify(this.holders)) {
      this.holders = next;
      this.persist();
    }
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

const isNodeList = (x: unknown): x is string[] => Array.isArray(x) && x.length > 0 && x.length <= 16 && x.every((n) => typeof n === 'string' && n.length > 0 && n.length <= 64);

/** The witness's lease calls, shared by its HTTP and UDP faces. */
export function witnessHandlers(state: WitnessState): Record<string, (body: unknown) => WitnessReply> {
  return {
    '/witness/acquire': (body) => {
      const { node, epoch, leaseMs, holderRecord, force } = (body ?? {}) as { node?: unknown; epoch?: unknown; leaseMs?: unknown; holderRecord?: unknown; force?: unknown };
      if (typeof node !== 'string' || !Number.isInteger(epoch) || !Number.isInteger(leaseMs) || (leaseMs as number) <= 0) {
        return { status: 400, body: { error: 'USAGE', message: 'expected {node: string, epoch: integer, leaseMs: positive integer}' } };
      }
      return { status: 200, body: state.acquire(node, epoch as number, leaseMs as number, { holderRecord: holderRecord === true, force: force === true }) };
    },
    '/witness/holders': (body) => {
      const { node, epoch, holders } = (body ?? {}) as { node?: unknown; epoch?: unknown; holders?: unknown };
      if (typeof node !== 'string' || !Number.isInteger(epoch) || !(holders === null || isNodeList(holders))) {
        return { status: 400, body: { error: 'USAGE', message: 'expected {node: string, epoch: integer, holders: non-empty array of node names or null}' } };
      }
      return { status: 200, body: state.setHolders(node, epoch as number, holders) };
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
  secret: KeyInput,
  onReject?: (reason: string) => void,
  opts: { replay?: import('../peer/replay.js').ReplayGuard; keyUse?: KeyUse; onProtocol?: import('../peer/udp.js').ProtocolListener } = {},
): express.Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.get('/health', (_req, res) => {
    res.json({ ok: true, ...state.read() });
  });
  app.use('/witness', requirePeerAuth(secret, { self: 'witness', replay: opts.replay, keyUse: opts.keyUse, onProtocol: opts.onProtocol, onReject: (r) => onReject?.(r) }));
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
