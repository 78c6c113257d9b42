import { describe, expect, it } from 'vitest';
import { PeerLink, heartbeatUrls, type HeartbeatMessage, type HeartbeatReply } from '../../src/cluster/heartbeat.js';
import type { Clock, PeerTransport } from '../../src/ports.js';
import { manualClock } from '../helpers/manual-clock.js';

function fakeClock() {
  let t = 10_000;
  const clock: Clock = manualClock(() => t);
  return { clock, advance: (ms: number) => (t += ms) };
}

const state = (role: HeartbeatMessage['role'], path?: number): HeartbeatMessage => ({
  node: 'b', role, epoch: 1, healthy: true, caughtUp: true, takeoverOffer: null, sentAt: 0, ...(path === undefined ? {} : { path }),
});

/** Records what is sent per URL; answers each request when the test says so. */
class ScriptedTransport implements PeerTransport {
  sent: { url: string; body: HeartbeatMessage; timeoutMs: number; signal?: AbortSignal }[] = [];
  private waiting: { resolve: (r: HeartbeatReply) => void; reject: (e: Error) => void }[] = [];
  post<T>(url: string, _path: string, body: unknown, timeoutMs: number, signal?: AbortSignal): Promise<T> {
    this.sent.push({ url, body: body as HeartbeatMessage, timeoutMs, signal });
    return new Promise<T>((resolve, reject) => this.waiting.push({ resolve: resolve as (r: HeartbeatReply) => void, reject }));
  }
  answerAll(): void {
    for (const w of this.waiting.splice(0)) w.resolve({ state: state('standby'), ack: true });
  }
  loseAll(): void {
    for (const w of this.waiting.splice(0)) w.reject(new Error('timeout'));
  }
  getStream(): never {
    throw new Error('not used');
  }
  putStream(): never {
    throw new Error('not used');
  }
}

const flush = () => new Promise((r) => setImmediate(r));

describe('PeerLink', () => {
  it('sends on every path with the path index; an HTTP path waits for its answer, a UDP path keeps beating', async () => {
    const { clock } = fakeClock();
    const t = new ScriptedTransport();
    const link = new PeerLink('b', ['http://h1:1', 'udp://h2:1'], t, clock, { intervalMs: 100, timeoutMs: 400, message: () => state('primary'), onReply: () => undefined });
    link.beat();
    link.beat();
    link.beat();
    expect(t.sent.filter((s) => s.url === 'http://h1:1')).toHaveLength(1);
    expect(t.sent.filter((s) => s.url === 'udp://h2:1')).toHaveLength(3);
    expect(t.sent.map((s) => s.body.path)).toEqual([0, 1, 1, 1]);
    t.answerAll();
    await flush();
    expect(link.paths.every((p) => p.inFlight === 0 && p.lastOkAt !== null)).toBe(true);
  });

  it('liveOrder puts the paths that answer first, in configuration order, and a cut path last', async () => {
    const { clock, advance } = fakeClock();
    const t = new ScriptedTransport();
    const link = new PeerLink('b', ['udp://h1:1', 'udp://h2:1'], t, clock, { intervalMs: 100, timeoutMs: 400, message: () => state('primary'), onReply: () => undefined });
    expect(link.liveOrder(clock.monotonicMs(), 500)).toEqual([0, 1]); // never heard: as configured
    link.heard(state('standby', 0));
    link.heard(state('standby', 1));
    expect(link.liveOrder(clock.monotonicMs(), 500)).toEqual([0, 1]);
    // Path 0 is cut: only path 1 carries the peer's heartbeats from now on.
    for (let i = 0; i < 6; i++) {
      advance(100);
      link.heard(state('standby', 1));
    }
    expect(link.liveOrder(clock.monotonicMs(), 500)).toEqual([1, 0]);
    // Path 0 answers again: configuration order is back (two healthy paths never trade places).
    link.heard(state('standby', 0));
    expect(link.liveOrder(clock.monotonicMs(), 500)).toEqual([0, 1]);
  });

  it('a standby only answers on paths where the primary beats, and beats again once a path falls silent', async () => {
    const { clock, advance } = fakeClock();
    const t = new ScriptedTransport();
    let responder = true;
    const link = new PeerLink('a', ['udp://h1:1', 'udp://h2:1'], t, clock, { intervalMs: 100, timeoutMs: 400, message: () => state('standby'), respondOnly: () => responder, onReply: () => undefined });
    link.heard(state('primary', 0));
    link.heard(state('primary', 1));
    link.beat();
    expect(t.sent).toHaveLength(0);
    expect(link.paths.map((p) => p.skipped)).toEqual([1, 1]);
    // Path 1 stops carrying the primary's heartbeats: after 1.5 intervals the standby probes it itself.
    advance(100);
    link.heard(state('primary', 0));
    advance(60);
    link.beat();
    expect(t.sent.map((s) => s.url)).toEqual(['udp://h2:1']);
    // Not a pure responder (e.g. no primary): beats everywhere.
    responder = false;
    link.heard(state('primary', 0));
    link.heard(state('primary', 1));
    link.beat();
    expect(t.sent.map((s) => s.url)).toEqual(['udp://h2:1', 'udp://h1:1', 'udp://h2:1']);
  });

  it('the peer is alive while its heartbeats arrive even if our own requests are lost, and dead after silence', async () => {
    const { clock, advance } = fakeClock();
    const t = new ScriptedTransport();
    const link = new PeerLink('b', ['udp://h1:1'], t, clock, { intervalMs: 100, timeoutMs: 400, message: () => state('standby'), onReply: () => undefined });
    expect(link.alive(clock.monotonicMs(), 500)).toBe(false);
    link.beat();
    t.loseAll();
    await flush();
    link.heard(state('primary'));
    expect(link.alive(clock.monotonicMs(), 500)).toBe(true);
    advance(499);
    expect(link.alive(clock.monotonicMs(), 500)).toBe(true);
    advance(2);
    expect(link.alive(clock.monotonicMs(), 500)).toBe(false);
    expect(link.paths[0].failed).toBe(1);
  });

  it('gives up an unanswered beat on the next tick when the timeout is shorter than the interval (no timer of its own)', async () => {
    const { clock, advance } = fakeClock();
    const t = new ScriptedTransport();
    const link = new PeerLink('b', ['udp://h1:1', 'http://h2:1'], t, clock, { intervalMs: 1000, timeoutMs: 400, message: () => state('primary'), onReply: () => undefined });
    link.beat();
    expect(link.paths.map((p) => p.inFlight)).toEqual([1, 1]);
    // The transport's own timeout is only a backstop past the next tick.
    expect(t.sent.every((s) => s.timeoutMs > 1000 && s.signal && !s.signal.aborted)).toBe(true);
    advance(1000);
    link.beat();
    expect(t.sent.slice(0, 2).every((s) => s.signal!.aborted)).toBe(true);
    expect(link.paths.map((p) => p.failed)).toEqual([1, 1]);
    expect(link.paths[0].lastError).toMatch(/timeout of 400ms exceeded/);
    // Both paths beat again on the same tick instead of waiting for the old beat to time out.
    expect(t.sent).toHaveLength(4);
    expect(link.paths.map((p) => p.inFlight)).toEqual([1, 1]);
    t.answerAll();
    await flush();
    expect(link.paths.map((p) => [p.inFlight, p.lastError, p.failed])).toEqual([
      [0, null, 1],
      [0, null, 1],
    ]);
  });

  it('with a fast heartbeat a beat waits its full timeout, several beats in flight, then is given up', () => {
    const { clock, advance } = fakeClock();
    const t = new ScriptedTransport();
    const link = new PeerLink('b', ['udp://h1:1'], t, clock, { intervalMs: 100, timeoutMs: 400, message: () => state('primary'), onReply: () => undefined });
    for (let i = 0; i < 4; i++) {
      link.beat();
      advance(100);
    }
    expect(t.sent.map((s) => s.signal!.aborted)).toEqual([false, false, false, false]);
    expect(link.paths[0].inFlight).toBe(4);
    link.beat(); // 400 ms after the first beat
    expect(t.sent.map((s) => s.signal!.aborted)).toEqual([true, false, false, false, false]);
    expect(link.paths[0]).toMatchObject({ inFlight: 4, failed: 1, sent: 5 });
    link.stop();
    expect(t.sent.every((s) => s.signal!.aborted)).toBe(true);
    expect(link.paths[0].inFlight).toBe(0);
  });

  it('heartbeat URLs: UDP on the same host:port by default, HTTP on request', () => {
    expect(heartbeatUrls({ urls: ['http://10.0.1.2:8780', 'http://10.0.2.2:8780'] })).toEqual(['udp://10.0.1.2:8780', 'udp://10.0.2.2:8780']);
    expect(heartbeatUrls({ urls: ['http://10.0.1.2:8780'], heartbeat: 'http' })).toEqual(['http://10.0.1.2:8780']);
  });
});
