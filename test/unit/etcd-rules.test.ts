/**
 * The etcd coordinator's grant rules against the witness's own (WitnessState), on the same seeded
 * sequences of calls: a model of etcd's keys (record, lease key while its lease runs, holder record)
 * driven by adapters/coordinator/etcd-rules.ts must answer every call as the witness does, so the two
 * backends cannot drift apart.
 */
import { describe, expect, it } from 'vitest';
import { WitnessState } from '../../src/cluster/witness.js';
import { answerOf, decideAcquire, decideHolders, decideRelease, parseHolders, parseLease, parseRecord, ttlSecondsFor, type EtcdLeaseState } from '../../adapters/coordinator/etcd-rules.js';
import { manualClock } from '../helpers/manual-clock.js';

/** etcd's keys as the adapter changes them; the lease key lives until `expiresAt`. */
class EtcdModel {
  record = { epoch: 0, holder: null as string | null };
  lease: { holder: string; epoch: number; expiresAt: number } | null = null;
  holders: string[] | null = null;
  constructor(private readonly now: () => number) {}
  state(): EtcdLeaseState {
    if (this.lease && this.lease.expiresAt <= this.now()) this.lease = null; // etcd removed the key
    return { record: { ...this.record }, live: this.lease ? { holder: this.lease.holder, epoch: this.lease.epoch, leaseId: '1' } : null, holders: this.holders };
  }
  acquire(node: string, epoch: number, leaseMs: number, opts: { holderRecord?: boolean; force?: boolean }) {
    const st = this.state();
    const d = decideAcquire(st, node, epoch, opts);
    if (d.kind === 'refuse') return answerOf(st, false, 1, d.reason);
    if (d.kind === 'grant') {
      this.record = d.record;
      if (d.holders !== undefined) this.holders = d.holders;
    }
    this.lease = { holder: node, epoch, expiresAt: this.now() + leaseMs };
    return answerOf(this.state(), true, leaseMs);
  }
  setHolders(node: string, epoch: number, holders: string[] | null) {
    const st = this.state();
    const d = decideHolders(st, node, epoch, holders);
    if (d.kind === 'refuse') return answerOf(st, false, 1, d.reason);
    this.holders = d.holders;
    return answerOf(this.state(), true, 1);
  }
  release(node: string, epoch: number) {
    const st = this.state();
    if (!decideRelease(st, node, epoch)) return answerOf(st, false, 1);
    this.record = { epoch: st.record.epoch, holder: null };
    this.lease = null;
    return answerOf(this.state(), true, 0);
  }
}

/** Deterministic pseudo-random numbers (mulberry32). */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The parts of an answer both backends agree on (time left differs: whole seconds in etcd). */
const comparable = (a: { granted: boolean; epoch: number; holder: string | null; holders?: string[] | null; reason?: string; remainingMs: number }) => ({
  granted: a.granted,
  epoch: a.epoch,
  holder: a.holder,
  holders: a.holders ?? null,
  reason: a.reason ?? null,
  leaseLive: a.remainingMs > 0,
});

describe('etcd coordinator rules = witness rules', () => {
  it('answer 40 seeded sequences of 300 calls exactly as WitnessState does', () => {
    for (let seed = 1; seed <= 40; seed++) {
      const r = rng(seed);
      let now = 1_000;
      const witness = new WitnessState(manualClock(() => now), null);
      const etcd = new EtcdModel(() => now);
      const nodes = ['a', 'b', 'c'];
      for (let i = 0; i < 300; i++) {
        now += Math.floor(r() * 400);
        const node = nodes[Math.floor(r() * nodes.length)];
        const current = witness.read().epoch;
        const epoch = Math.max(0, current + Math.floor(r() * 4) - 1);
        const op = r();
        let w, e;
        if (op < 0.55) {
          const opts = { holderRecord: r() < 0.5, force: r() < 0.1 };
          w = witness.acquire(node, epoch, 700, opts);
          e = etcd.acquire(node, epoch, 700, opts);
        } else if (op < 0.8) {
          const holders = r() < 0.2 ? null : r() < 0.5 ? [node] : r() < 0.8 ? [node, nodes[Math.floor(r() * 3)]] : ['z'];
          w = witness.setHolders(node, epoch, holders);
          e = etcd.setHolders(node, epoch, holders);
        } else if (op < 0.92) {
          w = witness.release(node, epoch);
          e = etcd.release(node, epoch);
        } else {
          w = witness.read();
          e = answerOf(etcd.state(), true, 1);
        }
        expect(comparable(e), `seed ${seed} call ${i}`).toEqual(comparable(w));
      }
    }
  });

  it('a live lease of another node refuses with its holder and time left above zero', () => {
    const st: EtcdLeaseState = { record: { epoch: 3, holder: 'a' }, live: { holder: 'a', epoch: 3, leaseId: '7' }, holders: null };
    expect(decideAcquire(st, 'b', 4)).toEqual({ kind: 'refuse', reason: 'lease-held' });
    const a = answerOf(st, false, 0, 'lease-held');
    expect(a).toMatchObject({ granted: false, holder: 'a', epoch: 3, reason: 'lease-held' });
    expect(a.remainingMs).toBeGreaterThan(0);
    // force never overrides a live lease
    expect(decideAcquire(st, 'b', 4, { force: true }).kind).toBe('refuse');
  });

  it('rounds leases up to whole seconds, one at least', () => {
    expect(ttlSecondsFor(140)).toBe(1);
    expect(ttlSecondsFor(700)).toBe(1);
    expect(ttlSecondsFor(1000)).toBe(1);
    expect(ttlSecondsFor(1001)).toBe(2);
    expect(ttlSecondsFor(3500)).toBe(4);
  });

  it('refuses to read keys it did not write', () => {
    expect(parseRecord('{"epoch":2,"holder":"a"}')).toEqual({ epoch: 2, holder: 'a' });
    expect(parseRecord('{"epoch":-1,"holder":"a"}')).toBeNull();
    expect(parseRecord('hello')).toBeNull();
    expect(parseLease('{"holder":"a","epoch":2}')).toEqual({ holder: 'a', epoch: 2 });
    expect(parseLease('{"holder":1}')).toBeNull();
    expect(parseHolders('null')).toBeNull();
    expect(parseHolders('["a","b"]')).toEqual(['a', 'b']);
    expect(parseHolders('[1]')).toBeUndefined();
  });
});
