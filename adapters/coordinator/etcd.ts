import { readFileSync } from 'node:fs';
import type { Etcd3, IKeyValue, IOptions, IRequestOp, ITxnResponse, ICompare } from 'etcd3';
import type { Coordinator, CoordinatorAcquireOptions, LeaseAnswer } from '../../src/ports.js';
import { HaError } from '../../src/errors.js';
import {
  answerOf,
  decideAcquire,
  decideHolders,
  decideRelease,
  parseHolders,
  parseLease,
  parseRecord,
  ttlSecondsFor,
  type EpochRecord,
  type EtcdLeaseState,
} from './etcd-rules.js';

/** What the adapter needs of `coordinator: { kind: etcd }` (src/config/schema.ts), secrets resolved. */
export interface EtcdCoordinatorOptions {
  endpoints: string[];
  /** Key prefix of this cluster, e.g. "/nimbus-ha/prod-a/" (one per cluster on a shared etcd). */
  prefix: string;
  /** PEM files: the CA that issued the etcd servers' certificates, and the client pair when etcd asks for one. */
  tls?: { ca: string; cert?: string; key?: string };
  auth?: { user: string; password: string };
}

/**
 * How long a refused candidate is told to wait when etcd still holds a lease whose time is up (etcd
 * removes expired leases on a timer of its own, every 500 ms): it asks again then.
 */
const EXPIRING_POLL_MS = 50;
/** Reads and guarded writes tried per call when another client changes the keys in between. */
const MAX_ROUNDS = 8;

/** Loaded once, when the first etcd coordinator is made: the CLI never pays for gRPC otherwise. */
let etcd3Module: Promise<typeof import('etcd3')> | null = null;

/**
 * The Coordinator port on an etcd cluster: the same rules as the `nimbus-ha witness` (etcd-rules.ts),
 * kept in three keys under the cluster's prefix and changed only in transactions guarded on the
 * revisions last read:
 *
 * - `<prefix>epoch`: `{epoch, holder}`, the highest epoch granted and to whom (holder null once
 *   released); not attached to a lease, so it survives expiry and etcd restarts;
 * - `<prefix>lease`: `{holder, epoch}` attached to an etcd lease of TTL ceil(leaseMs / 1 s) (etcd's
 *   minimum when that is larger): while it exists, no other node gets an epoch;
 * - `<prefix>holders`: the data-holder record (JSON list, or null).
 *
 * Safety: the holder counts its lease from when it sent the request; the etcd lease is created or
 * refreshed after that, with at least the same length, so etcd removes the key (and grants another
 * node) only after the holder's own lease has ended. A renewal refreshes the etcd lease first and then
 * confirms, by a linearizable read (a quorum of etcd), that the lease key is still this holder's.
 */
export class EtcdCoordinator implements Coordinator {
  private readonly keys: { epoch: Buffer; lease: Buffer; holders: Buffer };
  /** The etcd lease this process last attached for a node at an epoch (renewals keep it alive). */
  private own: { node: string; epoch: number; leaseId: string } | null = null;

  private constructor(
    private readonly client: Etcd3,
    private readonly opts: EtcdCoordinatorOptions,
  ) {
    this.keys = { epoch: Buffer.from(`${opts.prefix}epoch`), lease: Buffer.from(`${opts.prefix}lease`), holders: Buffer.from(`${opts.prefix}holders`) };
  }

  /** Load the etcd client (once per process) and connect lazily (the first call dials). */
  static async create(opts: EtcdCoordinatorOptions): Promise<EtcdCoordinator> {
    etcd3Module ??= import('etcd3');
    const mod = await etcd3Module;
    const Ctor = (mod as unknown as { Etcd3?: typeof Etcd3; default?: { Etcd3: typeof Etcd3 } }).Etcd3 ?? (mod as unknown as { default: { Etcd3: typeof Etcd3 } }).default.Etcd3;
    const options: IOptions = { hosts: opts.endpoints };
    if (opts.tls) {
      options.credentials = {
        rootCertificate: readFileSync(opts.tls.ca),
        ...(opts.tls.key ? { privateKey: readFileSync(opts.tls.key) } : {}),
        ...(opts.tls.cert ? { certChain: readFileSync(opts.tls.cert) } : {}),
      };
    }
    if (opts.auth) options.auth = { username: opts.auth.user, password: opts.auth.password };
    options.faultHandling = faultHandling(opts.endpoints.length);
    return new EtcdCoordinator(new Ctor(options), opts);
  }

  describe(): string {
    return `etcd ${this.opts.endpoints.join(',')} ${this.opts.prefix}`;
  }

  /** Close the gRPC channels (the node stops). */
  close(): void {
    this.client.close();
  }

  acquire(node: string, epoch: number, leaseMs: number, timeoutMs: number, signal?: AbortSignal, opts: CoordinatorAcquireOptions = {}): Promise<LeaseAnswer> {
    return this.bounded('acquire', timeoutMs, signal, (deadline) => this.doAcquire(node, epoch, leaseMs, opts, deadline));
  }

  setHolders(node: string, epoch: number, holders: string[] | null, timeoutMs: number): Promise<LeaseAnswer> {
    return this.bounded('setHolders', timeoutMs, undefined, (deadline) => this.doSetHolders(node, epoch, holders, deadline));
  }

  release(node: string, epoch: number, timeoutMs: number): Promise<LeaseAnswer> {
    return this.bounded('release', timeoutMs, undefined, (deadline) => this.doRelease(node, epoch, deadline));
  }

  read(timeoutMs: number): Promise<LeaseAnswer> {
    return this.bounded('read', timeoutMs, undefined, async (deadline) => {
      const { st } = await this.readState(deadline);
      return answerOf(st, true, await this.remainingMs(st, deadline));
    });
  }

  // ---- the calls ----

  private async doAcquire(node: string, epoch: number, leaseMs: number, opts: CoordinatorAcquireOptions, deadline: Deadline): Promise<LeaseAnswer> {
    const ttl = ttlSecondsFor(leaseMs);
    let first: Awaited<ReturnType<EtcdCoordinator['readState']>> | null = null;
    const own = this.own;
    if (own && own.node === node && own.epoch === epoch) {
      // The usual renewal, two calls: refresh the etcd lease this process attached, then a quorum read
      // that the lease key is still on it (nobody can have replaced a key whose lease was running).
      const ttlLeft = await this.keepAliveOnce(own.leaseId, deadline).catch((err: unknown) => {
        this.own = null;
        throw err;
      });
      first = await this.readState(deadline);
      const { st } = first;
      if (ttlLeft > 0 && st.live?.leaseId === own.leaseId && st.live.holder === node && st.live.epoch === epoch && st.record.holder === node && st.record.epoch === epoch) {
        return answerOf(st, true, ttlLeft * 1000);
      }
      this.own = null;
    }
    for (let round = 0; round < MAX_ROUNDS; round++) {
      const { st, mods } = first ?? (await this.readState(deadline));
      first = null;
      const d = decideAcquire(st, node, epoch, opts);
      if (d.kind === 'refuse') return answerOf(st, false, await this.remainingMs(st, deadline), d.reason);
      if (d.kind === 'renew' && st.live && st.live.holder === node && st.live.epoch === epoch) {
        // Refresh the running etcd lease, then confirm the key is still ours at a quorum.
        const ttlLeft = await this.keepAliveOnce(st.live.leaseId, deadline);
        if (ttlLeft <= 0) continue; // it ran out meanwhile: etcd removes the key, the next round attaches a new lease
        const again = await this.readState(deadline);
        if (again.mods.lease === mods.lease && again.mods.epoch === mods.epoch) {
          this.own = { node, epoch, leaseId: st.live.leaseId };
          return answerOf(again.st, true, ttlLeft * 1000);
        }
        continue;
      }
      // A new epoch, or a renewal whose etcd lease ran out (not released: the record still names it). A
      // lease key that disagrees with the record cannot come from these transactions; the record wins.
      const { id: leaseId, ttl: grantedTtl } = await this.grantLease(ttl, deadline);
      const value = JSON.stringify({ holder: node, epoch });
      const puts: IRequestOp[] = [{ request_put: { key: this.keys.lease, value: Buffer.from(value), lease: leaseId } }];
      let next: EtcdLeaseState = { ...st, live: { holder: node, epoch, leaseId } };
      if (d.kind === 'grant') {
        puts.push({ request_put: { key: this.keys.epoch, value: Buffer.from(JSON.stringify(d.record)) } });
        next = { ...next, record: d.record };
        if (d.holders !== undefined) {
          puts.push({ request_put: { key: this.keys.holders, value: Buffer.from(JSON.stringify(d.holders)) } });
          next = { ...next, holders: d.holders };
        }
      }
      const res = await this.txn(this.guard(mods), puts, deadline);
      if (res.succeeded) {
        // This node's own earlier lease (a re-campaign at a higher epoch) has no key any more.
        if (st.live && st.live.leaseId !== leaseId) this.revokeQuietly(st.live.leaseId);
        this.own = { node, epoch, leaseId };
        return answerOf(next, true, grantedTtl * 1000);
      }
      this.revokeQuietly(leaseId);
    }
    throw new HaError('WITNESS_UNREACHABLE', `${this.describe()}: the keys kept changing under ${MAX_ROUNDS} guarded transactions (another client writes ${this.opts.prefix}?)`);
  }

  private async doSetHolders(node: string, epoch: number, holders: string[] | null, deadline: Deadline): Promise<LeaseAnswer> {
    for (let round = 0; round < MAX_ROUNDS; round++) {
      const { st, mods } = await this.readState(deadline);
      const d = decideHolders(st, node, epoch, holders);
      if (d.kind === 'refuse') return answerOf(st, false, await this.remainingMs(st, deadline), d.reason);
      const next = { ...st, holders: d.holders };
      if (!d.changed) return answerOf(next, true, await this.remainingMs(st, deadline));
      const res = await this.txn(this.guard(mods), [{ request_put: { key: this.keys.holders, value: Buffer.from(JSON.stringify(d.holders)) } }], deadline);
      if (res.succeeded) return answerOf(next, true, await this.remainingMs(st, deadline));
    }
    throw new HaError('WITNESS_UNREACHABLE', `${this.describe()}: the keys kept changing under ${MAX_ROUNDS} guarded transactions`);
  }

  private async doRelease(node: string, epoch: number, deadline: Deadline): Promise<LeaseAnswer> {
    for (let round = 0; round < MAX_ROUNDS; round++) {
      const { st, mods } = await this.readState(deadline);
      if (!decideRelease(st, node, epoch)) return answerOf(st, false, await this.remainingMs(st, deadline));
      const record: EpochRecord = { epoch: st.record.epoch, holder: null };
      const res = await this.txn(
        this.guard(mods),
        [{ request_put: { key: this.keys.epoch, value: Buffer.from(JSON.stringify(record)) } }, { request_delete_range: { key: this.keys.lease } }],
        deadline,
      );
      if (res.succeeded) {
        if (st.live) this.revokeQuietly(st.live.leaseId);
        this.own = null;
        return answerOf({ ...st, record, live: null }, true, 0);
      }
    }
    throw new HaError('WITNESS_UNREACHABLE', `${this.describe()}: the keys kept changing under ${MAX_ROUNDS} guarded transactions`);
  }

  // ---- etcd operations ----

  /** The three keys in one linearizable read, with their mod revisions (0: absent) for the guard. */
  private async readState(deadline: Deadline): Promise<{ st: EtcdLeaseState; mods: { epoch: string; lease: string; holders: string } }> {
    const res = await this.txn([], [this.keys.epoch, this.keys.lease, this.keys.holders].map((key) => ({ request_range: { key } })), deadline);
    const kv = (i: number): IKeyValue | undefined => res.responses[i]?.response_range?.kvs?.[0];
    const [e, l, h] = [kv(0), kv(1), kv(2)];
    let record: EpochRecord = { epoch: 0, holder: null };
    if (e) {
      const r = parseRecord(e.value.toString());
      if (!r) throw new HaError('WITNESS_UNREACHABLE', `${this.describe()}: ${this.keys.epoch.toString()} holds ${JSON.stringify(e.value.toString().slice(0, 80))}, not an epoch record written by nimbus-ha (expected {"epoch":N,"holder":...}; is the prefix shared with something else?)`);
      record = r;
    }
    let live: EtcdLeaseState['live'] = null;
    if (l) {
      // A lease key that does not parse still blocks every grant (never hand out an epoch over it).
      const p = parseLease(l.value.toString()) ?? { holder: '(unreadable lease key)', epoch: -1 };
      live = { ...p, leaseId: String(l.lease) };
    }
    let holders: string[] | null = null;
    if (h) {
      const p = parseHolders(h.value.toString());
      if (p === undefined) throw new HaError('WITNESS_UNREACHABLE', `${this.describe()}: ${this.keys.holders.toString()} is not a data-holder record written by nimbus-ha`);
      holders = p;
    }
    return { st: { record, live, holders }, mods: { epoch: e ? String(e.mod_revision) : '0', lease: l ? String(l.mod_revision) : '0', holders: h ? String(h.mod_revision) : '0' } };
  }

  /** The three keys unchanged since they were read (mod revision 0: still absent). */
  private guard(mods: { epoch: string; lease: string; holders: string }): ICompare[] {
    return [
      { key: this.keys.epoch, target: 'Mod', result: 'Equal', mod_revision: mods.epoch },
      { key: this.keys.lease, target: 'Mod', result: 'Equal', mod_revision: mods.lease },
      { key: this.keys.holders, target: 'Mod', result: 'Equal', mod_revision: mods.holders },
    ];
  }

  private txn(compare: ICompare[], success: IRequestOp[], deadline: Deadline): Promise<ITxnResponse> {
    return this.client.kv.txn({ compare, success, failure: [] }, { deadline: deadline.at });
  }

  /** A new etcd lease of `ttl` seconds: its id, and the TTL etcd gave it (its minimum when that is more). */
  private async grantLease(ttl: number, deadline: Deadline): Promise<{ id: string; ttl: number }> {
    const r = await this.client.leaseClient.leaseGrant({ TTL: ttl, ID: 0 }, { deadline: deadline.at });
    if (r.error) throw new HaError('WITNESS_UNREACHABLE', `${this.describe()}: lease grant refused: ${r.error}`);
    return { id: String(r.ID), ttl: Math.max(ttl, Number(r.TTL) || 0) };
  }

  /**
   * One keep-alive of lease `id`: the TTL etcd set (seconds), 0 when the lease no longer exists. A
   * member that cannot be reached is left for the next one while time remains.
   */
  private async keepAliveOnce(id: string, deadline: Deadline): Promise<number> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.keepAliveOnceOn(id, deadline);
      } catch (err) {
        if (attempt >= this.opts.endpoints.length || !unreachableMember(err) || Date.now() >= deadline.at) throw err;
      }
    }
  }

  private async keepAliveOnceOn(id: string, deadline: Deadline): Promise<number> {
    const stream = await this.client.leaseClient.leaseKeepAlive({ deadline: deadline.at });
    return new Promise<number>((resolve, reject) => {
      let done = false;
      stream.on('data', (r) => {
        if (done) return;
        done = true;
        stream.end(); // a half-close: etcd ends the stream; cancelling would count against the host
        resolve(Number(r.TTL));
      });
      stream.on('error', (err) => {
        if (done) return;
        done = true;
        reject(err);
      });
      stream.on('end', () => {
        if (done) return;
        done = true;
        reject(new Error('lease keep-alive stream ended without an answer'));
      });
      stream.write({ ID: id });
    });
  }

  /**
   * Time left of the live lease as etcd sees it. etcd states it in whole seconds, rounded down: a lease
   * that has run out but is not yet removed (etcd sweeps expired leases every 500 ms) says 0, and the
   * candidate is told to ask again shortly.
   */
  private async remainingMs(st: EtcdLeaseState, deadline: Deadline): Promise<number> {
    if (!st.live) return 0;
    try {
      const r = await this.client.leaseClient.leaseTimeToLive({ ID: st.live.leaseId, keys: false }, { deadline: deadline.at });
      const ttl = Number(r.TTL);
      return ttl > 0 ? ttl * 1000 : EXPIRING_POLL_MS;
    } catch {
      return EXPIRING_POLL_MS;
    }
  }

  private revokeQuietly(id: string): void {
    if (id === '0') return;
    this.client.leaseClient.leaseRevoke({ ID: id }, { deadline: Date.now() + 2000 }).catch(() => undefined);
  }

  /**
   * Run `fn` within `timeoutMs` (every gRPC call carries the deadline) and give up at once when `signal`
   * aborts. Errors become WITNESS_UNREACHABLE with etcd's own words.
   */
  private async bounded<T>(what: string, timeoutMs: number, signal: AbortSignal | undefined, fn: (deadline: Deadline) => Promise<T>): Promise<T> {
    if (signal?.aborted) throw new HaError('WITNESS_UNREACHABLE', `${this.describe()}: ${what} aborted`);
    const deadline: Deadline = { at: Date.now() + Math.max(1, timeoutMs) };
    let timer: NodeJS.Timeout | undefined;
    let onAbort: (() => void) | undefined;
    const stop = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new HaError('WITNESS_UNREACHABLE', `${this.describe()}: timeout of ${timeoutMs}ms exceeded (${what})`)), Math.max(1, timeoutMs) + 50);
      if (signal) {
        onAbort = () => reject(new HaError('WITNESS_UNREACHABLE', `${this.describe()}: ${what} aborted`));
        signal.addEventListener('abort', onAbort, { once: true });
      }
    });
    const work = fn(deadline);
    work.catch(() => undefined); // settled after a timeout or an abort: nobody waits for it any more
    try {
      return await Promise.race([work, stop]);
    } catch (err) {
      if (err instanceof HaError) throw err;
      throw new HaError('WITNESS_UNREACHABLE', `${this.describe()}: ${(err as Error).message}`);
    } finally {
      clearTimeout(timer);
      if (onAbort) signal?.removeEventListener('abort', onAbort);
    }
  }
}

interface Deadline {
  /** Epoch ms (gRPC deadlines are wall-clock dates). */
  at: number;
}

/**
 * The etcd client's fault handling, replaced: its default circuit breaker stops calling a member for
 * five seconds after three failures, which after a short etcd outage would keep a standby from asking
 * for an epoch long after etcd answers again. Here every call goes through; a member that cannot be
 * reached (connection refused, reset) is left for the next one, once per member, and a call that ran
 * out of time is not retried (the deadline is the caller's timeoutMs).
 */
function faultHandling(members: number): IOptions['faultHandling'] {
  const signal = new AbortController().signal;
  const passThrough = { execute: <T>(fn: (ctx: { signal: AbortSignal; attempt: number }) => Promise<T> | T) => Promise.resolve().then(() => fn({ signal, attempt: 0 })) };
  const nextMember = {
    async execute<T>(fn: (ctx: { signal: AbortSignal; attempt: number }) => Promise<T> | T): Promise<T> {
      for (let attempt = 0; ; attempt++) {
        try {
          return await fn({ signal, attempt });
        } catch (err) {
          if (attempt + 1 >= members || !unreachableMember(err)) throw err;
        }
      }
    },
  };
  return { host: () => passThrough, global: nextMember } as unknown as IOptions['faultHandling'];
}

/** gRPC UNAVAILABLE (14): the member is down or its connection broke; another member may answer. */
function unreachableMember(err: unknown): boolean {
  const e = err as { code?: unknown; constructor?: { name?: string }; message?: string };
  return e?.code === 14 || e?.constructor?.name === 'GRPCUnavailableError' || /\bUNAVAILABLE\b|ECONNREFUSED|ECONNRESET/.test(String(e?.message ?? ''));
}
