import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Agent } from '../../src/cluster/agent.js';
import type { HealthSource, RoleHooks } from '../../src/ports.js';
import type { HeartbeatMessage, HeartbeatReply } from '../../src/cluster/heartbeat.js';
import { EpochStore } from '../../src/cluster/epoch-store.js';
import { EventBus } from '../../src/events/bus.js';
import { clusterConfigSchema } from '../../src/config/schema.js';
import { systemClock } from '../../src/clock.js';
import type { Clock, Coordinator, LeaseAnswer, PeerTransport, Vip } from '../../src/ports.js';
import { manualClock } from '../helpers/manual-clock.js';

/** The peer as a scripted primary: answers heartbeats with `peer` while `answering`, else times out. */
class ScriptedPrimary implements PeerTransport {
  answering = true;
  /** Heartbeats the agent sent. */
  readonly sent: HeartbeatMessage[] = [];
  peer: HeartbeatMessage = { node: 'a', role: 'primary', epoch: 1, healthy: true, caughtUp: true, takeoverOffer: null, sentAt: 0 };
  async post<T>(_url: string, path: string, body?: unknown): Promise<T> {
    if (path !== '/peer/heartbeat') throw new Error(`unexpected ${path}`);
    this.sent.push(body as HeartbeatMessage);
    if (!this.answering) throw new Error('timeout');
    const reply: HeartbeatReply = { state: { ...this.peer }, ack: false };
    return reply as T;
  }
  getStream(): never {
    throw new Error('not used');
  }
  putStream(): never {
    throw new Error('not used');
  }
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

async function until(what: string, cond: () => boolean, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(2);
  }
}

const dirs: string[] = [];
const agents: Agent[] = [];
afterEach(async () => {
  for (const a of agents.splice(0)) await a.stop();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

/**
 * The witness as a script: the old primary `a` holds epoch 1 until `leaseLeftMs` after the standby's
 * first request; until then every acquire is refused with the time left, after it the next epoch is
 * granted.
 */
class ScriptedWitness implements Coordinator {
  leaseEnd = Number.POSITIVE_INFINITY;
  constructor(private readonly leaseLeftMs: number) {}
  readonly asks: { at: number; granted: boolean }[] = [];
  describe(): string {
    return 'scripted witness';
  }
  async acquire(node: string, epoch: number): Promise<LeaseAnswer> {
    const now = Date.now();
    if (node !== 'a' && this.asks.length === 0) this.leaseEnd = now + this.leaseLeftMs;
    if (node === 'a' || now >= this.leaseEnd) {
      this.asks.push({ at: now, granted: true });
      return { granted: true, epoch, holder: node, remainingMs: 1000 };
    }
    this.asks.push({ at: now, granted: false });
    return { granted: false, epoch: 1, holder: 'a', remainingMs: this.leaseEnd - now };
  }
  async setHolders(): Promise<LeaseAnswer> {
    return { granted: false, epoch: 1, holder: null, remainingMs: 0 };
  }
  async release(): Promise<LeaseAnswer> {
    return { granted: true, epoch: 1, holder: null, remainingMs: 0 };
  }
  async read(): Promise<LeaseAnswer> {
    return { granted: true, epoch: 1, holder: 'a', remainingMs: Math.max(0, this.leaseEnd - Date.now()) };
  }
}

function standbyAgent(heartbeatMs: number, hooks: RoleHooks[] = [], coordinator: Coordinator | null = null, vip: Vip | null = null, clock: Clock = systemClock, epoch = 1) {
  const dir = mkdtempSync(join(tmpdir(), 'nha-agent-'));
  dirs.push(dir);
  const config = clusterConfigSchema.parse({
    node: 'b',
    listen: { host: '127.0.0.1', port: 1 },
    secret: randomBytes(24).toString('base64url'),
    adminToken: randomBytes(24).toString('base64url'),
    dataDir: dir,
    peers: [{ node: 'a', urls: ['http://127.0.0.1:9'], heartbeat: 'http' }],
    preferredPrimary: 'a',
    ...(coordinator ? { witness: { url: 'http://127.0.0.1:9' } } : { quorum: { allowTwoNodeWithoutWitness: true } }),
    timings: { heartbeatMs, deadAfterMs: heartbeatMs * 5, leaseMs: heartbeatMs * 7, requestTimeoutMs: heartbeatMs * 4 },
  });
  const store = EpochStore.inDir(dir);
  if (epoch > 0) store.update({ epoch });
  const bus = new EventBus('b', () => store.get().epoch);
  const events: string[] = [];
  const promotions: (string | undefined)[] = [];
  bus.on((e) => {
    events.push(e.type);
    if (e.message?.startsWith('promoted to primary')) promotions.push((e.details as { kind?: string } | undefined)?.kind);
  });
  let healthy = true;
  const health: HealthSource = { healthy: () => healthy, escalated: () => false, status: () => [] };
  const transport = new ScriptedPrimary();
  // Decision reasons with their times, to explain a failed timing assertion.
  const trace: string[] = [];
  const note = (o: object, m?: string) => void trace.push(`${Date.now()} ${m ?? ''} ${JSON.stringify(o)}`);
  const log = { info: note, warn: note, error: note };
  const agent = new Agent({ config, clock, store, bus, transport, coordinator, vip, health, hooks, log });
  agents.push(agent);
  return { agent, transport, events, promotions, trace, setHealthy: (h: boolean) => (healthy = h) };
}

/** A settled standby whose primary then goes silent; returns once the standby has declared it dead. */
async function standbyLosingPrimary(hb: number, witness: Coordinator, hooks: RoleHooks[] = [], vip: Vip | null = null) {
  const { agent, transport, events, trace } = standbyAgent(hb, hooks, witness, vip);
  await agent.start();
  await until('standby', () => agent.role === 'standby', 5000);
  await sleep(2 * hb);
  transport.answering = false;
  await until('peer_dead', () => events.includes('peer_dead'), 10 * hb);
  return { agent, trace, events };
}

describe('what a standby tells its primary', () => {
  it('names the data paths that lag in its heartbeats, and stops once they caught up', async () => {
    const hb = 20;
    let repoCaughtUp = false;
    const hooks: RoleHooks[] = [
      { name: 'db', caughtUp: () => true },
      { name: 'repo', caughtUp: () => repoCaughtUp },
      { name: 'files' },
    ];
    const { agent, transport } = standbyAgent(hb, hooks);
    await agent.start();
    await until('standby', () => agent.role === 'standby', 2000);
    await until('a heartbeat as standby', () => transport.sent.some((m) => m.role === 'standby'), 2000);
    const lagging = transport.sent.filter((m) => m.role === 'standby').at(-1)!;
    expect(lagging.caughtUp).toBe(false);
    expect(lagging.behind).toEqual(['repo']);
    repoCaughtUp = true;
    const n = transport.sent.length;
    await until('a caught-up heartbeat', () => transport.sent.slice(n).some((m) => m.caughtUp), 40 * hb);
    const caughtUp = transport.sent.slice(n).find((m) => m.caughtUp)!;
    expect(caughtUp.behind).toBeUndefined();
  });
});

describe('agent decision cycles', () => {
  it('a settled standby runs a cycle about once a second, not every heartbeat, and at once when an input changes', async () => {
    const hb = 20;
    const { agent, transport, setHealthy } = standbyAgent(hb);
    await agent.start();
    await until('standby', () => agent.role === 'standby', 2000);
    await sleep(10 * hb);

    // Settled: 25 ticks in 500 ms, at most one settled cycle per second (plus one in flight at the start).
    const c0 = agent.stats.cycles;
    await sleep(25 * hb);
    expect(agent.stats.cycles - c0).toBeLessThanOrEqual(2);
    expect(agent.role).toBe('standby');

    // The primary reports itself unhealthy: the next tick sees a changed input and runs a cycle.
    const c1 = agent.stats.cycles;
    transport.peer = { ...transport.peer, healthy: false };
    await until('a cycle after the peer turned unhealthy', () => agent.stats.cycles > c1, 4 * hb);

    // Own health flips: same.
    await sleep(5 * hb);
    const c2 = agent.stats.cycles;
    setHealthy(false);
    await until('a cycle after local health changed', () => agent.stats.cycles > c2, 4 * hb);
  });

  it('on a manual clock (no real waiting): ticks come from Clock.every, a settled standby decides once a second of ticks, and a silent primary is dead at dead-after', async () => {
    const hb = 20;
    let t = 0;
    const clock = manualClock(() => t);
    const { agent, transport, events } = standbyAgent(hb, [], null, null, clock);
    // Let the agent's promises (transport answers, cycles) run between ticks.
    const settle = async () => {
      for (let i = 0; i < 20; i++) await new Promise<void>((r) => setImmediate(r));
    };
    const advance = async (ms: number) => {
      for (let step = 0; step < ms; step += hb / 4) {
        t += hb / 4;
        clock.runDue();
        await settle();
      }
    };
    await agent.start();
    await settle();
    expect(clock.pending()).toBeGreaterThan(0); // the loop is a clock timer, nothing else
    await advance(10 * hb);
    expect(agent.role).toBe('standby');
    const c0 = agent.stats.cycles;
    await advance(50 * hb); // 50 ticks, one simulated second
    expect(agent.stats.cycles - c0).toBeGreaterThanOrEqual(1);
    expect(agent.stats.cycles - c0).toBeLessThanOrEqual(2);
    transport.answering = false;
    const silentAt = t;
    for (let i = 0; i < 40 && !events.includes('peer_dead'); i++) await advance(hb / 4);
    expect(events).toContain('peer_dead');
    // Dead-after is 5 heartbeats; the last answered request was up to one tick before the silence.
    expect(t - silentAt).toBeGreaterThanOrEqual(4 * hb);
    expect(t - silentAt).toBeLessThanOrEqual(6 * hb + hb / 4);
  });

  it('a settled standby still notices its primary going silent on time (deadline, not the settled pace)', async () => {
    const hb = 20;
    const { agent, transport, events } = standbyAgent(hb);
    await agent.start();
    await until('standby', () => agent.role === 'standby', 2000);
    await sleep(10 * hb);
    const silentAt = Date.now();
    transport.answering = false;
    await until('peer_dead', () => events.includes('peer_dead'), 50 * hb);
    // Dead-after is 5 heartbeats (100 ms); the settled pace would usually be several hundred ms later.
    // The margin absorbs a loaded test host.
    expect(Date.now() - silentAt).toBeLessThan(5 * hb + 250);
  });
});

describe('failover election', () => {
  it('retries a campaign the witness refused at the moment the old lease runs out, not at the next paced attempt', async () => {
    // A slow heartbeat makes the difference plain: a paced retry comes a whole interval (400 ms) after
    // the refusal; the witness says the old lease ends 60 ms after it.
    const hb = 400;
    const witness = new ScriptedWitness(60);
    const { agent, trace } = await standbyLosingPrimary(hb, witness);
    await until('a refused campaign', () => witness.asks.some((a) => !a.granted), 3 * hb);
    await until('primary', () => agent.role === 'primary', 4 * hb);
    const granted = witness.asks.find((a) => a.granted)!;
    // Granted soon after the lease ended (a paced retry would be about 340 ms late); never before it.
    expect(granted.at).toBeGreaterThanOrEqual(witness.leaseEnd);
    const explain = () => JSON.stringify({ leaseEnd: witness.leaseEnd, asks: witness.asks, trace }, null, 1);
    expect(granted.at - witness.leaseEnd, explain()).toBeLessThan(hb / 2);
    expect(agent.epoch).toBe(2);
  });

  it('a fresh node (epoch 0) that never heard its peer but finds the witness at epoch 1 labels its takeover a failover, not the bootstrap', async () => {
    // The old primary was elected and killed before this node heard a single heartbeat from it.
    const hb = 40;
    const witness = new ScriptedWitness(3 * hb);
    const { agent, transport, events, promotions } = standbyAgent(hb, [], witness, null, systemClock, 0);
    transport.answering = false;
    await agent.start();
    await until('primary', () => agent.role === 'primary', 100 * hb);
    expect(witness.asks.some((a) => !a.granted)).toBe(true);
    // The grant that elected it is the witness's latest answer in /status from the first moment.
    expect((agent.status().witness as { last_answer: unknown }).last_answer).toMatchObject({ granted: true, epoch: 2, holder: 'b' });
    expect(promotions).toEqual(['failover']);
    expect(events).toContain('failover');
    expect(agent.epoch).toBe(2);
  });
});

/**
 * A witness that has already granted epoch 2 (to `a`, whose lease has run out) when the standby, still
 * at epoch 1, asks for epoch 2: it refuses that epoch, naming no lease, and grants any higher one.
 */
class AheadWitness implements Coordinator {
  readonly asks: { at: number; epoch: number; granted: boolean }[] = [];
  describe(): string {
    return 'witness ahead by one epoch';
  }
  async acquire(node: string, epoch: number): Promise<LeaseAnswer> {
    const granted = node === 'a' || epoch > 2;
    this.asks.push({ at: Date.now(), epoch, granted });
    return granted ? { granted, epoch, holder: node, remainingMs: 1000 } : { granted, epoch: 2, holder: null, remainingMs: 0 };
  }
  async setHolders(): Promise<LeaseAnswer> {
    return { granted: false, epoch: 1, holder: null, remainingMs: 0 };
  }
  async release(): Promise<LeaseAnswer> {
    return { granted: true, epoch: 2, holder: null, remainingMs: 0 };
  }
  async read(): Promise<LeaseAnswer> {
    return { granted: true, epoch: 2, holder: null, remainingMs: 0 };
  }
}

/**
 * A standby behind an AheadWitness loses its primary: the refused epoch 2 is followed by a granted epoch
 * 3 within a few ms (half a heartbeat at most), not a heartbeat (400 ms) later.
 */
async function expectPromptRetryAboveThePassedEpoch(hooks: RoleHooks[] = []): Promise<void> {
  const hb = 400;
  const witness = new AheadWitness();
  const { agent, trace } = await standbyLosingPrimary(hb, witness, hooks);
  await until('primary', () => agent.role === 'primary', 6 * hb);
  const asks = witness.asks.filter((a) => a.epoch >= 2);
  expect(asks.map((a) => [a.epoch, a.granted])).toEqual([
    [2, false],
    [3, true],
  ]);
  expect(asks[1].at - asks[0].at, JSON.stringify({ asks, trace }, null, 1)).toBeLessThan(hb / 2);
  expect(agent.epoch).toBe(3);
}

describe('failover election behind the witness', () => {
  it('retries at once with a higher epoch when the witness refuses an epoch it has passed', async () => {
    await expectPromptRetryAboveThePassedEpoch();
  });

  it('does not lose a retry time that passes while the refused campaign\'s cycle is still running', async () => {
    // The cycle decides on the clock reading it started with; a slow follow hook (30 ms) keeps it running
    // past the 5 ms retry. The next cycle must still come when it ends, not at the next paced attempt.
    await expectPromptRetryAboveThePassedEpoch([{ name: 'slow-follow', onFollow: () => sleep(30) }]);
  });
});

describe('heartbeat payload', () => {
  it('carries each data path\'s peerStatus, not its full status, and hands the peer\'s to onPeerStatus', async () => {
    const hb = 20;
    const seen: (Record<string, unknown> | undefined)[] = [];
    const repo: RoleHooks = {
      name: 'repo',
      status: () => ({ objectsBehind: 0, detail: 'x'.repeat(4000) }),
      peerStatus: () => ({ objectsBehind: 0, changeHint: { instance: 'i1', generation: 7, ok: true, error: null } }),
      onPeerStatus: (st) => void seen.push(st),
    };
    const files: RoleHooks = { name: 'files', status: () => ({ detail: 'y'.repeat(4000) }) };
    const { agent, transport } = standbyAgent(hb, [repo, files]);
    transport.peer = { ...transport.peer, replication: { repo: { changeHint: { instance: 'p', generation: 3, ok: true, error: null } } } };
    await agent.start();
    await until('a heartbeat sent', () => transport.sent.length > 0, 2000);
    const msg = transport.sent.at(-1)!;
    expect(msg.replication).toEqual({ repo: { objectsBehind: 0, changeHint: { instance: 'i1', generation: 7, ok: true, error: null } } });
    // One small datagram: well under a 1500-byte MTU even with long status details on every data path.
    expect(Buffer.byteLength(JSON.stringify(msg))).toBeLessThan(600);
    await until('the peer\'s status handed over', () => seen.length > 0, 2000);
    expect(seen.at(-1)).toEqual({ changeHint: { instance: 'p', generation: 3, ok: true, error: null } });
    // /status keeps the full local summaries.
    expect((agent.status().replication as Record<string, { detail?: string }>).files.detail).toHaveLength(4000);
  });
});

describe('timings agreement', () => {
  it('reports a peer that runs other timings once, shows them in /status, and reports the match when fixed', async () => {
    const hb = 20;
    const { agent, transport, events } = standbyAgent(hb);
    // The peer beats once a second and declares death after 3 s: this node (20 / 100 / 140 ms) would take
    // it for dead between two of its beats.
    transport.peer = { ...transport.peer, timings: [1000, 3000, 3500] };
    await agent.start();
    await until('a heartbeat sent', () => transport.sent.length > 0, 2000);
    expect(transport.sent.at(-1)!.timings).toEqual([20, 100, 140]);
    await until('peer_timings_differ', () => events.includes('peer_timings_differ'), 2000);
    await sleep(10 * hb);
    // Once per distinct value, not once per heartbeat.
    expect(events.filter((e) => e === 'peer_timings_differ')).toHaveLength(1);
    const peer = (agent.status().peers as { timings: unknown }[])[0];
    expect(peer.timings).toEqual({ heartbeatMs: 1000, deadAfterMs: 3000, leaseMs: 3500 });

    transport.peer = { ...transport.peer, timings: [20, 100, 140] };
    await until('peer_timings_match', () => events.includes('peer_timings_match'), 2000);
    await sleep(10 * hb);
    expect(events.filter((e) => e === 'peer_timings_match')).toHaveLength(1);
    expect(events.filter((e) => e === 'peer_timings_differ')).toHaveLength(1);
  });

  it('says nothing about a peer whose timings match or that sends none', async () => {
    const hb = 20;
    const { agent, transport, events } = standbyAgent(hb);
    await agent.start();
    await until('a few heartbeats', () => transport.sent.length > 5, 2000);
    transport.peer = { ...transport.peer, timings: [20, 100, 140] };
    const n = transport.sent.length;
    await until('more heartbeats', () => transport.sent.length > n + 5, 2000);
    expect(events.filter((e) => e.startsWith('peer_timings'))).toEqual([]);
    expect((agent.status().peers as { timings: unknown }[])[0].timings).toEqual({ heartbeatMs: 20, deadAfterMs: 100, leaseMs: 140 });
  });
});

/** Grants like AheadWitness, but leaves one lease renewal of the new primary unanswered until it is given up. */
class HangingRenewalWitness extends AheadWitness {
  readonly hung: { at: number; timeoutMs: number; signal?: AbortSignal; abortedAt: number | null }[] = [];
  private renewals = 0;
  override async acquire(node: string, epoch: number, leaseMs?: number, timeoutMs = 0, signal?: AbortSignal): Promise<LeaseAnswer> {
    if (node === 'b' && epoch > 2 && ++this.renewals === 3) {
      const h = { at: Date.now(), timeoutMs, signal, abortedAt: null as number | null };
      this.hung.push(h);
      return new Promise<LeaseAnswer>((_resolve, reject) => {
        signal?.addEventListener('abort', () => {
          h.abortedAt = Date.now();
          reject(new Error('aborted'));
        });
      });
    }
    return super.acquire(node, epoch);
  }
}

describe('witness lease renewal', () => {
  it('an unanswered renewal is given up after requestTimeoutMs on the heartbeat tick and sent again, with no timer of its own', async () => {
    // Real timers: 100 ms beats leave a busy host (a CI run next to other work) room before the 700 ms lease.
    const hb = 100;
    const witness = new HangingRenewalWitness();
    const { agent, events } = await standbyLosingPrimary(hb, witness);
    await until('primary', () => agent.role === 'primary', 3000);
    const roleChanges = () => events.filter((e) => e === 'role_changed').length;
    const changes0 = roleChanges();
    await until('a renewal left hanging', () => witness.hung.length === 1, 3000);
    const h = witness.hung[0];
    // The transport's own timeout is only a backstop, beyond the point where the tick gives up.
    expect(h.timeoutMs).toBeGreaterThan(4 * hb);
    expect(h.signal).toBeDefined();
    await until('the hung renewal given up', () => h.abortedAt !== null, 10 * hb);
    // requestTimeoutMs is 4 heartbeats here; given up on the renewal tick at or after it.
    expect(h.abortedAt! - h.at).toBeGreaterThanOrEqual(3.5 * hb - 5);
    const next = witness.asks.find((a) => a.at >= h.abortedAt!);
    await until('the next renewal', () => witness.asks.some((a) => a.at >= h.abortedAt! && a.granted), 10 * hb);
    expect(next === undefined || next.at - h.abortedAt! < 2 * hb).toBe(true);
    expect(agent.role).toBe('primary');
    expect(roleChanges()).toBe(changes0); // never fenced meanwhile
  });
});

/** An address whose real state the test can change behind the agent's back. */
class FakeVip implements Vip {
  on = false;
  acquires = 0;
  reads = 0;
  describe(): string {
    return 'fake address';
  }
  async acquire(): Promise<void> {
    this.on = true;
    this.acquires++;
  }
  async release(): Promise<void> {
    this.on = false;
  }
  async held(): Promise<boolean> {
    this.reads++;
    return this.on;
  }
  async close(): Promise<void> {}
}

describe('VIP reconciliation', () => {
  it('a primary whose address was removed behind its back takes it again, reading it back about once a second', async () => {
    const hb = 20;
    const vip = new FakeVip();
    const { agent, events } = await standbyLosingPrimary(hb, new AheadWitness(), [], vip);
    await until('primary', () => agent.role === 'primary', 3000);
    await until('the address taken', () => vip.on, 2000);
    const acquires = vip.acquires;
    // Read back on the heartbeat tick, not on every one of its 50 ticks a second.
    const reads0 = vip.reads;
    await sleep(1500);
    expect(vip.reads - reads0).toBeGreaterThanOrEqual(1);
    expect(vip.reads - reads0).toBeLessThanOrEqual(3);
    // Someone removes the address by hand: reported, and taken again.
    vip.on = false;
    await until('vip_reconciled', () => events.includes('vip_reconciled'), 3000);
    await until('the address taken again', () => vip.on, 2000);
    expect(vip.acquires).toBe(acquires + 1);
    expect(agent.role).toBe('primary');
  });
});
