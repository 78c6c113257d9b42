/**
 * One contract for the Coordinator port, run against a real `nimbus-ha witness` and a real etcd
 * (Debian's etcd-server; skipped with a message when it is not installed, the witness half always runs):
 * grant, refusal while a lease runs (naming the holder and the time left), a higher epoch only once the
 * holder's lease has run out, renewal, release, read, the data-holder record, timeouts and aborts, and a
 * restart of the coordinator.
 *
 * Leases here are LEASE_MS (one second: etcd's shortest with the fixture's election timing). etcd counts
 * whole seconds, so bounds below allow the backend's rounding; the safety bound (never granted to
 * another node before the holder's own lease, counted from its send, has run out) is exact for both.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { Coordinator } from '../../src/ports.js';
import { EtcdCluster, etcdMissing } from '../../fixtures/etcd.js';
import { EtcdBackend, WitnessBackend, type Backend } from './backends.js';

const LEASE_MS = 1000;
const T = 2000; // request timeout of the calls below
/** How late after the lease's end a backend may grant the next node: etcd sweeps expired leases every 500 ms. */
const TAKEOVER_SLACK_MS = 2500;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function answered<T>(fn: () => Promise<T>, ms = 3000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    try {
      return await fn();
    } catch (err) {
      if (Date.now() > end) throw err;
      await sleep(50);
    }
  }
}

const missing = etcdMissing();
if (missing) console.warn(`coordinator contract: etcd half SKIPPED: ${missing}`);

function contract(name: 'witness' | 'etcd', make: () => Promise<Backend>, cleanup: () => Promise<void> = async () => undefined) {
  describe.skipIf(name === 'etcd' && missing !== null)(`Coordinator contract: ${name}`, () => {
    let be: Backend;
    let a: Coordinator;
    let b: Coordinator;
    beforeAll(async () => {
      be = await make();
    });
    afterAll(async () => {
      be?.resume();
      await be?.close();
      await cleanup();
    });
    beforeEach(async () => {
      await be.fresh();
      a = be.client('a');
      b = be.client('b');
    });

    it('grants a first epoch and reads it back', async () => {
      const g = await a.acquire('a', 1, LEASE_MS, T);
      expect(g).toMatchObject({ granted: true, epoch: 1, holder: 'a' });
      expect(g.remainingMs).toBeGreaterThan(0);
      const r = await b.read(T);
      expect(r).toMatchObject({ granted: true, epoch: 1, holder: 'a', holders: null });
      expect(r.remainingMs).toBeGreaterThan(0);
      expect(r.remainingMs).toBeLessThanOrEqual(Math.ceil(LEASE_MS / 1000) * 1000);
    });

    it('refuses another node while the lease runs, naming the holder and the time left', async () => {
      await a.acquire('a', 1, LEASE_MS, T);
      const r = await b.acquire('b', 2, LEASE_MS, T);
      expect(r).toMatchObject({ granted: false, epoch: 1, holder: 'a', reason: 'lease-held' });
      expect(r.remainingMs).toBeGreaterThan(0);
      expect(r.remainingMs).toBeLessThanOrEqual(Math.ceil(LEASE_MS / 1000) * 1000);
      // An epoch not above the coordinator's is stale, whoever asks.
      expect(await b.acquire('b', 1, LEASE_MS, T)).toMatchObject({ granted: false, reason: 'stale-epoch', epoch: 1 });
      expect(await a.acquire('a', 0, LEASE_MS, T)).toMatchObject({ granted: false, reason: 'stale-epoch', epoch: 1 });
    });

    it('grants a higher epoch to another node only once the holder\'s own lease has run out', async () => {
      const sentAt = Date.now();
      expect((await a.acquire('a', 1, LEASE_MS, T)).granted).toBe(true);
      let grantedAt: number | null = null;
      let askedAt = 0;
      let refusals = 0;
      const end = Date.now() + LEASE_MS + TAKEOVER_SLACK_MS + 2000;
      while (Date.now() < end) {
        const asked = Date.now();
        const r = await b.acquire('b', 2, LEASE_MS, T);
        if (r.granted) {
          grantedAt = Date.now();
          askedAt = asked;
          expect(r).toMatchObject({ epoch: 2, holder: 'b' });
          break;
        }
        refusals++;
        expect(r).toMatchObject({ reason: 'lease-held', holder: 'a' });
        await sleep(20);
      }
      expect(grantedAt, 'b was never granted epoch 2').not.toBeNull();
      // Safety: a's lease counts from its send; nobody else may get an epoch before it ends. The grant
      // happened between b's ask and its answer: the answer is never early for a correct backend, and
      // the ask may precede the lease's end only by scheduling delay (50 ms).
      expect(grantedAt! - sentAt).toBeGreaterThanOrEqual(LEASE_MS);
      expect(askedAt - sentAt).toBeGreaterThanOrEqual(LEASE_MS - 50);
      expect(grantedAt! - sentAt).toBeLessThan(LEASE_MS + TAKEOVER_SLACK_MS);
      expect(refusals).toBeGreaterThan(0);
      // The old holder's renewal at its epoch is stale now, and says which epoch won.
      expect(await a.acquire('a', 1, LEASE_MS, T)).toMatchObject({ granted: false, reason: 'stale-epoch', epoch: 2 });
      expect(await a.read(T)).toMatchObject({ epoch: 2, holder: 'b' });
    });

    it('renews the same holder at the same epoch, and nobody else gets an epoch meanwhile', async () => {
      expect((await a.acquire('a', 3, LEASE_MS, T)).granted).toBe(true);
      const end = Date.now() + 3 * LEASE_MS;
      let renewals = 0;
      while (Date.now() < end) {
        await sleep(LEASE_MS / 4);
        const r = await a.acquire('a', 3, LEASE_MS, T);
        expect(r).toMatchObject({ granted: true, epoch: 3, holder: 'a' });
        renewals++;
        expect(await b.acquire('b', 4, LEASE_MS, T)).toMatchObject({ granted: false, reason: 'lease-held', holder: 'a' });
      }
      expect(renewals).toBeGreaterThanOrEqual(8);
      // A renewal after the lease ran out is still a renewal while nobody took a higher epoch.
      await sleep(LEASE_MS + 1500);
      expect((await a.read(T)).holder).toBeNull();
      expect(await a.acquire('a', 3, LEASE_MS, T)).toMatchObject({ granted: true, epoch: 3, holder: 'a' });
    });

    it('release gives the lease up at once; only the holder at that epoch may release', async () => {
      await a.acquire('a', 1, LEASE_MS, T);
      expect((await b.release('b', 1, T)).granted).toBe(false);
      expect((await a.release('a', 0, T)).granted).toBe(false);
      expect((await a.read(T)).holder).toBe('a');
      const r = await a.release('a', 1, T);
      expect(r).toMatchObject({ granted: true, epoch: 1, holder: null, remainingMs: 0 });
      const t0 = Date.now();
      expect(await b.acquire('b', 2, LEASE_MS, T)).toMatchObject({ granted: true, epoch: 2, holder: 'b' });
      expect(Date.now() - t0).toBeLessThan(LEASE_MS / 2);
      // After its release a node cannot renew its old epoch.
      expect(await a.acquire('a', 1, LEASE_MS, T)).toMatchObject({ granted: false, reason: 'stale-epoch' });
    });

    it('keeps the data-holder record: set only by the holder at its epoch, naming itself; grants only to a holder unless forced', async () => {
      const g = await a.acquire('a', 1, LEASE_MS, T, undefined, { holderRecord: true });
      expect(g).toMatchObject({ granted: true, holders: ['a'] });
      expect(await a.setHolders('a', 1, ['b', 'a', 'a'], T)).toMatchObject({ granted: true, holders: ['a', 'b'] });
      expect(await b.setHolders('b', 1, ['b'], T)).toMatchObject({ granted: false, reason: 'not-the-primary', holders: ['a', 'b'] });
      expect(await a.setHolders('a', 2, ['a'], T)).toMatchObject({ granted: false, reason: 'not-the-primary' });
      expect(await a.setHolders('a', 1, ['b'], T)).toMatchObject({ granted: false, reason: 'primary-not-in-record' });
      expect(await a.setHolders('a', 1, ['a'], T)).toMatchObject({ granted: true, holders: ['a'] });
      expect((await b.read(T)).holders).toEqual(['a']);
      // a hands over: b is not in the record, so it gets no epoch, even with a's lease gone.
      expect((await a.release('a', 1, T)).granted).toBe(true);
      expect(await b.acquire('b', 2, LEASE_MS, T, undefined, { holderRecord: true })).toMatchObject({ granted: false, reason: 'not-a-holder', holders: ['a'] });
      // The operator accepts the loss: forced, b becomes the only holder.
      expect(await b.acquire('b', 3, LEASE_MS, T, undefined, { holderRecord: true, force: true })).toMatchObject({ granted: true, epoch: 3, holder: 'b', holders: ['b'] });
      // Force never overrides a live lease.
      expect(await a.acquire('a', 4, LEASE_MS, T, undefined, { holderRecord: true, force: true })).toMatchObject({ granted: false, reason: 'lease-held', holder: 'b' });
      // No synchronous data path any more: the record is dropped.
      expect(await b.setHolders('b', 3, null, T)).toMatchObject({ granted: true, holders: null });
    });

    it('times out within timeoutMs when the coordinator hangs, stops at once on abort, and answers again after', async () => {
      await a.acquire('a', 1, LEASE_MS, T);
      be.pause();
      try {
        let t0 = Date.now();
        await expect(a.acquire('a', 1, LEASE_MS, 300)).rejects.toThrow();
        const took = Date.now() - t0;
        expect(took).toBeGreaterThanOrEqual(250);
        expect(took).toBeLessThan(1500);
        t0 = Date.now();
        await expect(b.read(300)).rejects.toThrow();
        expect(Date.now() - t0).toBeLessThan(1500);
        const ctrl = new AbortController();
        t0 = Date.now();
        const call = b.acquire('b', 2, LEASE_MS, 10_000, ctrl.signal);
        setTimeout(() => ctrl.abort(), 100);
        await expect(call).rejects.toThrow();
        expect(Date.now() - t0).toBeLessThan(1000);
      } finally {
        be.resume();
      }
      const end = Date.now() + 5000;
      let answered = false;
      while (!answered && Date.now() < end) {
        answered = await b.read(T).then(
          () => true,
          () => false,
        );
        if (!answered) await sleep(100);
      }
      expect(answered).toBe(true);
      expect((await b.read(T)).epoch).toBe(1);
    });

    it('keeps epoch, holder and record over a restart of the coordinator, and the holder\'s lease still blocks others', async () => {
      expect((await a.acquire('a', 5, LEASE_MS, T, undefined, { holderRecord: true })).granted).toBe(true);
      expect((await a.setHolders('a', 5, ['a', 'b'], T)).granted).toBe(true);
      await be.restart();
      // The first call may meet a connection the old process left behind: ask until it answers (3 s).
      const r = await answered(() => b.read(T));
      expect(r).toMatchObject({ epoch: 5, holders: ['a', 'b'] });
      // The restarted coordinator does not know when the lease was last renewed: it assumes just now.
      expect(await b.acquire('b', 6, LEASE_MS, T, undefined, { holderRecord: true })).toMatchObject({ granted: false, reason: 'lease-held', holder: 'a' });
      expect(await a.acquire('a', 5, LEASE_MS, T)).toMatchObject({ granted: true, epoch: 5, holder: 'a' });
      expect(await b.acquire('b', 5, LEASE_MS, T)).toMatchObject({ granted: false, reason: 'stale-epoch' });
    });
  });
}

contract('witness', async () => new WitnessBackend());

let etcd: EtcdCluster | null = null;
contract(
  'etcd',
  async () => {
    etcd = new EtcdCluster(1);
    await etcd.start();
    return new EtcdBackend(etcd);
  },
  async () => {
    await etcd?.stop();
  },
);
