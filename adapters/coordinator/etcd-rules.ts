import type { CoordinatorAcquireOptions, LeaseAnswer } from '../../src/ports.js';

/**
 * The witness's grant rules (src/cluster/witness.ts, WitnessState) as a pure function of the state the
 * etcd coordinator reads in one transaction, so both backends answer alike. The etcd adapter applies
 * the decided change in a transaction guarded on the revisions it read: a concurrent change makes it
 * read and decide again, never act on stale state.
 */

/** `<prefix>epoch`: the highest epoch granted, to whom (null once released), never attached to a lease. */
export interface EpochRecord {
  epoch: number;
  /** The node granted `epoch`; it may renew at that epoch, even after expiry, until it releases. */
  holder: string | null;
}

/** What one read of the three keys says. */
export interface EtcdLeaseState {
  record: EpochRecord;
  /** `<prefix>lease` exists: an etcd lease runs for `holder` at `epoch` (the witness's "unexpired lease"). */
  live: { holder: string; epoch: number; leaseId: string } | null;
  /** `<prefix>holders`: the data-holder record (null: none kept). */
  holders: string[] | null;
}

export type AcquireDecision =
  | { kind: 'refuse'; reason: NonNullable<LeaseAnswer['reason']> }
  /** Same epoch, same holder: refresh its etcd lease (or attach a new one when it ran out). */
  | { kind: 'renew' }
  /** A new epoch for `node`: record, lease and (when `holders` is not undefined) the holder record change together. */
  | { kind: 'grant'; record: EpochRecord; holders: string[] | null | undefined };

/** WitnessState.acquire's rules, in the same order. */
export function decideAcquire(st: EtcdLeaseState, node: string, epoch: number, opts: CoordinatorAcquireOptions = {}): AcquireDecision {
  if (epoch === st.record.epoch && st.record.holder === node) return { kind: 'renew' };
  if (epoch <= st.record.epoch) return { kind: 'refuse', reason: 'stale-epoch' };
  if (st.live !== null && st.live.holder !== node) return { kind: 'refuse', reason: 'lease-held' };
  if (st.holders !== null && !st.holders.includes(node) && !opts.force) return { kind: 'refuse', reason: 'not-a-holder' };
  // Before the new primary acknowledges anything alone, the record says it is the only holder.
  const holders = opts.holderRecord || opts.force || st.holders !== null ? [node] : undefined;
  return { kind: 'grant', record: { epoch, holder: node }, holders };
}

export type HoldersDecision = { kind: 'refuse'; reason: 'not-the-primary' | 'primary-not-in-record' } | { kind: 'set'; holders: string[] | null; changed: boolean };

/** WitnessState.setHolders: only the holder at the current epoch, and it must stay in the record. */
export function decideHolders(st: EtcdLeaseState, node: string, epoch: number, holders: string[] | null): HoldersDecision {
  if (epoch !== st.record.epoch || st.record.holder !== node) return { kind: 'refuse', reason: 'not-the-primary' };
  if (holders !== null && !holders.includes(node)) return { kind: 'refuse', reason: 'primary-not-in-record' };
  const next = holders === null ? null : [...new Set(holders)].sort();
  return { kind: 'set', holders: next, changed: JSON.stringify(next) !== JSON.stringify(st.holders) };
}

/** WitnessState.release: the holder at that epoch gives its lease up; anyone else is refused. */
export function decideRelease(st: EtcdLeaseState, node: string, epoch: number): boolean {
  return st.record.holder === node && st.record.epoch === epoch;
}

/**
 * The answer for a state. `remainingMs` is the coordinator's own estimate of the live lease's time left
 * (above zero whenever a lease is live, so a refused candidate retries then rather than at once).
 */
export function answerOf(st: EtcdLeaseState, granted: boolean, remainingMs: number, reason?: LeaseAnswer['reason']): LeaseAnswer {
  const a: LeaseAnswer = {
    granted,
    epoch: st.record.epoch,
    holder: st.live ? st.live.holder : null,
    remainingMs: st.live ? Math.max(1, Math.round(remainingMs)) : 0,
    holders: st.holders ? [...st.holders] : null,
  };
  if (reason) a.reason = reason;
  return a;
}

/** etcd leases count whole seconds: the TTL that outlives a lease of `leaseMs` (at least one second). */
export function ttlSecondsFor(leaseMs: number): number {
  return Math.max(1, Math.ceil(leaseMs / 1000));
}

/** Parse the JSON of `<prefix>epoch` (absent or unreadable: nothing granted yet is NOT assumed; see caller). */
export function parseRecord(text: string): EpochRecord | null {
  try {
    const v = JSON.parse(text) as { epoch?: unknown; holder?: unknown };
    if (!Number.isInteger(v.epoch) || (v.epoch as number) < 0) return null;
    if (v.holder !== null && typeof v.holder !== 'string') return null;
    return { epoch: v.epoch as number, holder: v.holder as string | null };
  } catch {
    return null;
  }
}

export function parseLease(text: string): { holder: string; epoch: number } | null {
  try {
    const v = JSON.parse(text) as { holder?: unknown; epoch?: unknown };
    if (typeof v.holder !== 'string' || !Number.isInteger(v.epoch)) return null;
    return { holder: v.holder, epoch: v.epoch as number };
  } catch {
    return null;
  }
}

export function parseHolders(text: string): string[] | null | undefined {
  try {
    const v = JSON.parse(text) as unknown;
    if (v === null) return null;
    if (Array.isArray(v) && v.every((x) => typeof x === 'string')) return v as string[];
    return undefined;
  } catch {
    return undefined;
  }
}
