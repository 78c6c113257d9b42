/**
 * Upgrades of a running pair, with real sidecars, witness and embedded PostgreSQL on loopback. The
 * previous release is a node made to speak protocol version 1 (NHA_PROTOCOL_VERSION=1: what every
 * release sent before versions were stated, and it checks nothing, as those releases did); a release two
 * versions ahead is a node made to speak PROTOCOL_VERSION + 2. Checked from outside: an independent
 * writer through the database VIP, a split-brain poller, the nodes' event histories.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { Cluster, SplitBrainChecker } from '../../fixtures/cluster.js';
import { PROTOCOL_VERSION } from '../../src/peer/protocol.js';
import { startPairWithWriter } from '../helpers/db-pair.js';
import { directDb as direct, sleep, until } from '../helpers/wait.js';

type Node = 'a' | 'b';
const PREVIOUS = { NHA_PROTOCOL_VERSION: '1' };
const TOO_NEW = { NHA_PROTOCOL_VERSION: String(PROTOCOL_VERSION + 2) };

const kept: string[] = [];
afterAll(() => {
  for (const d of kept) console.warn(`upgrade test failed: its stack is kept in ${d}`);
});

function stack(name: string) {
  const dir = mkdtempSync(join(tmpdir(), `nha-upgrade-${name}-`));
  let passed = false;
  return {
    dir,
    pass: () => (passed = true),
    done: async (c: Cluster | undefined) => {
      await c?.stop();
      if (passed) rmSync(dir, { recursive: true, force: true });
      else kept.push(dir);
    },
  };
}

describe('rolling upgrade (protocol 1 → current), one process at a time, under a writer', () => {
  const s = stack('rolling');
  let c: Cluster | undefined;
  afterEach(() => s.done(c));

  it('witness, standby, switchover, former primary: no failover, no double primary, no acknowledged row lost; status shows the mixed releases', async () => {
    c = new Cluster({ dir: s.dir, db: { sync: 'sync' }, env: { a: PREVIOUS, b: PREVIOUS, witness: PREVIOUS } });
    const cl = c;
    const w = await startPairWithWriter(cl, 20);
    const split = new SplitBrainChecker([cl.nodes.a.url, cl.nodes.b.url], 20);
    split.start();
    const epoch0 = (await cl.status('a'))!.epoch as number;
    // Every node reports protocol 1 (a release of version 1 states nothing; its peers see version 1).
    expect((await cl.status('a'))!.protocol.version).toBe(1);

    const steady = async (primary: Node, what: string) => {
      const standby: Node = primary === 'a' ? 'b' : 'a';
      await cl.waitFor((a, b) => (primary === 'a' ? a : b)?.role === 'primary' && (primary === 'a' ? b : a)?.role === 'standby', 60_000, `${what}: ${primary} primary`);
      await until(`${what}: ${standby} streaming and caught up, the primary's lease on all 3 votes`, async () => {
        const st = (await cl.status(standby))!;
        const p = (await cl.status(primary))!;
        return st.replication.db.streaming === true && p.peers[0].caught_up === true && p.peers[0].alive === true && p.lease.votes === 3;
      }, 90_000);
    };
    const witnessStarts = () => readFileSync(join(s.dir, 'witness.log'), 'utf8').split('witness listening').length - 1;

    // 1. The witness.
    const before = witnessStarts();
    cl.env.witness = {};
    await cl.restartWitness(cl.witnessSecret);
    await until('the upgraded witness listens', async () => witnessStarts() > before, 20_000);
    await sleep(1000); // an ack of the old witness process counts for one lease
    await steady('a', 'witness upgraded');

    // 2. The standby: the pair now runs two releases.
    cl.env.b = {};
    await cl.restartNode('b');
    await steady('a', 'standby upgraded');
    const mixedA = (await cl.status('a'))!;
    const mixedB = (await cl.status('b'))!;
    expect(mixedB.protocol.version).toBe(PROTOCOL_VERSION);
    expect(mixedB.peers[0]).toMatchObject({ protocol: 1, incompatible: null, alive: true });
    expect(mixedB.mixed_versions).toBe(true);
    expect((await cl.events('b', 'peer_version')).some((e) => e.details?.peer?.protocol === 1)).toBe(true);
    // The node of the previous release follows the new one (a real one reports no versions at all).
    expect(mixedA.peers[0]).toMatchObject({ role: 'standby', alive: true, caught_up: true });

    // 3. A planned switchover to the upgraded node (asked again while it lags an instant under the writer).
    let r = await cl.admin('a', '/admin/switchover', {});
    for (let i = 0; i < 20 && r.status === 409; i++) {
      await sleep(1000);
      r = await cl.admin('a', '/admin/switchover', {});
    }
    expect(r.status, JSON.stringify(r.data)).toBe(202);
    await steady('b', 'switchover to the upgraded node');

    // 4. The former primary.
    cl.env.a = {};
    await cl.restartNode('a');
    await steady('b', 'former primary upgraded');
    await until('both report one release again', async () => (await cl.status('b'))!.mixed_versions === false && (await cl.status('a'))!.mixed_versions === false, 20_000);
    const acked = w.acked.length;
    await until('writes go on', async () => w.acked.length > acked + 20, 30_000);

    await w.stop();
    split.stop();
    expect(await w.missing(direct(cl.nodes.b.pgPort))).toEqual([]);
    expect(w.acked.length).toBeGreaterThan(100);
    expect(split.observed).toBe(0);
    for (const n of ['a', 'b'] as const) {
      expect(await cl.events(n, 'failover')).toEqual([]);
      expect(await cl.events(n, 'peer_incompatible')).toEqual([]);
    }
    // One planned switchover and nothing else.
    expect((await cl.status('b'))!.epoch).toBe(epoch0 + 1);
    expect((await cl.status('a'))!.peers[0]).toMatchObject({ protocol: PROTOCOL_VERSION, incompatible: null });
    s.pass();
  }, 600_000);
});

const NEXT = { NHA_PROTOCOL_VERSION: String(PROTOCOL_VERSION + 1) };

describe.each([
  { name: 'a on the previous release (protocol 1), b on this one', env: { a: PREVIOUS }, aProtocol: 1 },
  { name: 'a on this release, b on the next (it writes to a in a\'s version)', env: { b: NEXT, witness: NEXT }, aProtocol: PROTOCOL_VERSION },
])('a pair one release apart: $name', ({ env, aProtocol }) => {
  const s = stack('mixed');
  let c: Cluster | undefined;
  afterEach(() => s.done(c));

  it('kill -9 of either node fails over (the other release promotes); a rejoin follows; nothing is ever two primaries', async () => {
    c = new Cluster({ dir: s.dir, env });
    const cl = c;
    await cl.start();
    await cl.waitFor((a, b) => a?.role === 'primary' && b?.role === 'standby', 60_000, 'a (previous release) primary, b standby');
    const split = new SplitBrainChecker([cl.nodes.a.url, cl.nodes.b.url], 20);
    split.start();
    await until('b hears a as primary', async () => (await cl.status('b'))!.peers[0].role === 'primary', 10_000);
    expect((await cl.status('b'))!.peers[0]).toMatchObject({ protocol: aProtocol, incompatible: null });

    cl.kill('a');
    await cl.waitFor((_a, b) => b?.role === 'primary', 20_000, 'b (current release) primary after kill -9 of a');
    expect((await cl.events('b', 'failover')).length).toBe(1);
    cl.startNode('a');
    await cl.waitFor((a, b) => a?.role === 'standby' && b?.role === 'primary', 30_000, 'a rejoins as standby');
    await until('a hears b as primary', async () => (await cl.status('a'))!.peers[0].role === 'primary', 10_000);

    cl.kill('b');
    await cl.waitFor((a) => a?.role === 'primary', 20_000, 'a (previous release) primary after kill -9 of b');
    expect((await cl.events('a', 'failover')).length).toBe(1);
    cl.startNode('b');
    await cl.waitFor((a, b) => a?.role === 'primary' && b?.role === 'standby', 30_000, 'b rejoins as standby');
    split.stop();
    expect(split.observed).toBe(0);
    for (const n of ['a', 'b'] as const) expect(await cl.events(n, 'peer_incompatible')).toEqual([]);
    s.pass();
  }, 240_000);
});

describe('a node two protocol versions ahead', () => {
  const s = stack('newer');
  let c: Cluster | undefined;
  afterEach(() => s.done(c));

  it('is refused visibly on both sides, counted alive and incompatible (never dead): no promotion, no failover; it rejoins once it runs a compatible release', async () => {
    c = new Cluster({ dir: s.dir });
    const cl = c;
    await cl.start();
    await cl.waitFor((a, b) => a?.role === 'primary' && b?.role === 'standby', 60_000, 'a primary, b standby');
    const epoch = (await cl.status('a'))!.epoch as number;

    cl.env.b = TOO_NEW;
    await cl.restartNode('b');
    await until('a sees b alive and incompatible', async () => {
      const p = (await cl.status('a'))!.peers[0];
      return p.alive === true && typeof p.incompatible === 'string';
    }, 20_000);
    await until('b sees a alive and incompatible', async () => {
      const p = (await cl.status('b'))?.peers[0];
      return p?.alive === true && typeof p?.incompatible === 'string';
    }, 20_000);
    // The restart itself may take longer than deadAfterMs (a peer_dead then is right); from the moment
    // both see each other as incompatible, neither may count the other dead.
    const deadBefore = { a: (await cl.events('a', 'peer_dead')).length, b: (await cl.events('b', 'peer_dead')).length };
    // Held for several lease times: neither node promotes or is demoted on the other's account.
    const timings = (await cl.status('a'))!.timings;
    const end = Date.now() + Math.max(5000, 8 * timings.leaseMs);
    while (Date.now() < end) {
      const [a, b] = [(await cl.status('a'))!, (await cl.status('b'))!];
      expect(a.role).toBe('primary');
      expect(b.role).not.toBe('primary');
      expect(a.peers[0].alive).toBe(true);
      await sleep(200);
    }
    const aStatus = (await cl.status('a'))!;
    expect(aStatus.peers[0].incompatible).toMatch(/speaks protocol \d+.*upgrade this node/);
    expect((await cl.status('b'))!.peers[0].incompatible).toMatch(/upgrade the peer first/);
    expect((await cl.events('a', 'peer_incompatible')).length).toBeGreaterThanOrEqual(1);
    expect((await cl.events('b', 'peer_incompatible')).length).toBeGreaterThanOrEqual(1);
    for (const n of ['a', 'b'] as const) {
      expect((await cl.events(n, 'peer_dead')).slice(deadBefore[n])).toEqual([]);
      expect(await cl.events(n, 'failover')).toEqual([]);
    }
    expect((await cl.status('a'))!.epoch).toBe(epoch);

    // Back on the current release: compatible again, standby again.
    cl.env.b = {};
    await cl.restartNode('b');
    await cl.waitFor((a, b) => a?.role === 'primary' && b?.role === 'standby', 30_000, 'b standby again');
    await until('a sees b compatible again, and says so', async () => (await cl.status('a'))!.peers[0].incompatible === null && (await cl.events('a', 'peer_compatible')).length > 0, 10_000);
    expect((await cl.events('a', 'peer_version')).at(-1)?.details?.compatible).toBe(true);
    expect((await cl.status('a'))!.epoch).toBe(epoch);
    s.pass();
  }, 240_000);
});
