/**
 * Rotating the cluster secret and the data secret of a running pair, one process at a time, as
 * docs/operations.md ("Rotating secrets") describes: add the new key last everywhere, move it first
 * everywhere, drop the old one. Only standbys and the witness are restarted; the role moves by planned
 * switchovers. Real sidecars, witness and embedded PostgreSQL in sync mode, an independent writer through
 * the database VIP and a split-brain poller.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ADMIN_TOKEN, Cluster, DATA_SECRET, SECRET, SplitBrainChecker } from '../../fixtures/cluster.js';
import { startPairWithWriter } from '../helpers/db-pair.js';
import { keyId } from '../../src/peer/keyring.js';
import { directDb as direct, sleep, until } from '../helpers/wait.js';

const NEW = randomBytes(32).toString('base64url');
const NEW_DATA = randomBytes(32).toString('base64url');
type Node = 'a' | 'b';

describe('secret rotation one node at a time (real processes on loopback)', () => {
  const keys: Record<Node, { secret: string[]; dataSecret: string[] }> = {
    a: { secret: [SECRET], dataSecret: [DATA_SECRET] },
    b: { secret: [SECRET], dataSecret: [DATA_SECRET] },
  };
  let c: Cluster;
  // The stack's directory (logs, event histories) is kept when the test fails, for a look afterwards.
  const dir = mkdtempSync(join(tmpdir(), 'nha-keyrot-'));
  let passed = false;
  afterAll(async () => {
    await c?.stop();
    if (passed) rmSync(dir, { recursive: true, force: true });
    else console.warn(`key rotation test failed: its stack is kept in ${dir}`);
  });

  it('add, promote, drop: no failover, no double primary, no acknowledged row lost; status shows each peer on the new key', async () => {
    c = new Cluster({ dir, db: { sync: 'sync' }, extraConfig: (n) => ({ secret: keys[n].secret, dataSecret: keys[n].dataSecret }) });
    const w = await startPairWithWriter(c, 20);
    const split = new SplitBrainChecker([c.nodes.a.url, c.nodes.b.url], 20);
    split.start();
    const epoch0 = (await c.status('a'))!.epoch as number;

    const steady = async (primary: Node, what: string) => {
      const standby: Node = primary === 'a' ? 'b' : 'a';
      await c.waitFor((a, b) => (primary === 'a' ? a : b)?.role === 'primary' && (primary === 'a' ? b : a)?.role === 'standby', 60_000, `${what}: ${primary} primary`);
      await until(`${what}: ${standby} streaming and caught up`, async () => {
        const s = (await c.status(standby))!;
        const p = (await c.status(primary))!;
        return s.replication.db.streaming === true && p.peers[0].caught_up === true && p.peers[0].alive === true;
      }, 90_000);
    };
    // One process at a time: the next restart waits until the primary's lease has every vote again.
    const allVotes = async (primary: Node, what: string) =>
      until(`${what}: the primary's lease has all 3 votes`, async () => {
        const l = (await c.status(primary))!.lease;
        return l.votes === 3 && l.voters === 3;
      }, 30_000);
    const witnessStarts = () => readFileSync(join(dir, 'witness.log'), 'utf8').split('witness listening').length - 1;
    const restartWitness = async (k: string[], primary: Node, what: string) => {
      const before = witnessStarts();
      await c.restartWitness(k);
      await until(`${what}: the witness listens again`, async () => witnessStarts() > before, 20_000);
      // An ack from the old witness process counts for one lease (700 ms): only a vote after that is the new one's.
      await sleep(1000);
      await allVotes(primary, what);
    };
    const restartStandby = async (n: Node, k: { secret: string[]; dataSecret: string[] }, what: string) => {
      keys[n] = k;
      await c.restartNode(n);
      await steady(n === 'a' ? 'b' : 'a', what);
      await allVotes(n === 'a' ? 'b' : 'a', what);
    };
    const switchover = async (from: Node, what: string) => {
      // A switchover refused because the standby lags for an instant under the writer (409) is asked again.
      let r = await c.admin(from, '/admin/switchover', {});
      for (let i = 0; i < 20 && r.status === 409; i++) {
        await sleep(1000);
        r = await c.admin(from, '/admin/switchover', {});
      }
      expect(r.status, `${what}: ${JSON.stringify(r.data)}`).toBe(202);
      await steady(from === 'a' ? 'b' : 'a', what);
    };
    const acked = () => w.acked.length;
    const keyStatus = async (n: Node) => JSON.parse((await c.request(n, '/admin/keys', { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })).text);

    // 1. The new keys go last everywhere: nothing changes on the wire yet.
    const added = { secret: [SECRET, NEW], dataSecret: [DATA_SECRET, NEW_DATA] };
    await restartWitness([SECRET, NEW], 'a', 'add: witness');
    await restartStandby('b', added, 'add: b');
    await switchover('a', 'add: switchover to b');
    await restartStandby('a', added, 'add: a');
    // 2. The new keys go first: a node signing with the new key meets one still signing with the old.
    const promoted = { secret: [NEW, SECRET], dataSecret: [NEW_DATA, DATA_SECRET] };
    await restartWitness([NEW, SECRET], 'b', 'promote: witness');
    await restartStandby('a', promoted, 'promote: a');
    const mixed = await keyStatus('b');
    expect(mixed.lease.peers.a.keyId).toBe(keyId(NEW));
    expect(mixed.lease.signingKey).toBe(keyId(SECRET));
    expect((await c.events('b', 'peer_key_changed')).some((e) => e.details?.keyId === keyId(NEW))).toBe(true);
    await switchover('b', 'promote: switchover to a');
    await restartStandby('b', promoted, 'promote: b');
    // 3. The old keys go.
    const dropped = { secret: [NEW], dataSecret: [NEW_DATA] };
    await restartWitness([NEW], 'a', 'drop: witness');
    await restartStandby('b', dropped, 'drop: b');
    await switchover('a', 'drop: switchover to b');
    await restartStandby('a', dropped, 'drop: a');
    const before = acked();
    await until('writes go on', async () => acked() > before + 20, 30_000);

    await w.stop();
    split.stop();
    const p = (await c.primary())!;
    expect(p).toBe('b');
    expect(await w.missing(direct(c.nodes.b.pgPort))).toEqual([]);
    expect(w.acked.length).toBeGreaterThan(100);
    expect(split.observed).toBe(0);
    // Three planned switchovers and nothing else.
    for (const n of ['a', 'b'] as const) expect(await c.events(n, 'failover')).toEqual([]);
    expect((await c.status('b'))!.epoch).toBe(epoch0 + 3);
    for (const n of ['a', 'b'] as const) {
      const k = await keyStatus(n);
      const other = n === 'a' ? 'b' : 'a';
      expect(k.lease.acceptedKeys).toEqual([keyId(NEW)]);
      expect(k.lease.peers[other].keyId).toBe(keyId(NEW));
      expect(k.data.acceptedKeys).toEqual([keyId(NEW_DATA)]);
      // Key ids are for admins: not in the open /status.
      expect(JSON.stringify(await c.status(n))).not.toContain(keyId(NEW));
    }
    // The witness, since its last restart, took lease calls from both nodes on the new key (its log says so).
    const log = readFileSync(join(c.dir, 'witness.log'), 'utf8').split('\n');
    const since = log.slice(log.map((l) => l.includes('witness listening')).lastIndexOf(true));
    expect(since[0]).toContain(keyId(NEW));
    for (const n of ['a', 'b']) expect(since.some((l) => l.includes(`${n} signs with key id ${keyId(NEW)}`))).toBe(true);
    passed = true;
  }, 600_000);
});
