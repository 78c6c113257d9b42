import { describe, expect, it } from 'vitest';
import { eventKey, gapAround, isNarrated, narrateEvent } from '../../src/cli/demo-narrate.js';
import type { HaEvent } from '../../src/ports.js';

const ev = (over: Partial<HaEvent>): HaEvent => ({ type: 'x', node: 'b', epoch: 7, time: '2026-01-02T10:11:12.000Z', severity: 'info', message: 'm', ...over });

describe('demo narration', () => {
  it('a role change is one line with both roles and the epoch', () => {
    const l = narrateEvent(ev({ type: 'role_changed', details: { from: 'standby', to: 'primary' } }));
    expect(l).toMatch(/ b {2}role standby -> primary \(epoch 7\)$/);
  });

  it('a failover names the new primary, the client gap and the detection time', () => {
    const l = narrateEvent(ev({ type: 'failover', details: { detect_ms: 512 } }), 830);
    expect(l).toContain('failover: b is primary at epoch 7, clients saw 830 ms without an answer, detection 512 ms');
  });

  it('a switchover without a measured gap says so', () => {
    expect(narrateEvent(ev({ type: 'switchover' }))).toContain('switchover: b is primary at epoch 7, client gap not measured');
  });

  it('data-path degradation and recovery carry the sidecar message', () => {
    expect(narrateEvent(ev({ type: 'db.sync.degraded', message: 'standby a gone for 3000 ms' }))).toContain('db.sync.degraded: standby a gone for 3000 ms');
    expect(narrateEvent(ev({ type: 'repo.sync.restored', message: 'both hold uploads again' }))).toContain('repo.sync.restored: both hold uploads again');
    expect(narrateEvent(ev({ type: 'path_degraded', message: 'heartbeat path p1 silent' }))).toContain('path_degraded: heartbeat path p1 silent');
  });

  it('routine events are not narrated', () => {
    for (const t of ['heartbeat', 'repo_pass', 'request_done', 'agent_started']) {
      expect(isNarrated(t)).toBe(false);
      expect(narrateEvent(ev({ type: t }))).toBeNull();
    }
  });

  it('the same event polled twice has the same key; another has another', () => {
    expect(eventKey(ev({}))).toBe(eventKey(ev({})));
    expect(eventKey(ev({}))).not.toBe(eventKey(ev({ time: '2026-01-02T10:11:12.001Z' })));
  });

  it('the client gap is the longest outage around the takeover, an open one counting up to now', () => {
    const at = 100_000;
    expect(gapAround([], at, at + 1000)).toBeNull();
    // The outage began when the old primary died, before the failover event, and ended after it.
    expect(gapAround([{ from: at - 700, to: at + 150 }], at, at + 1000)).toBe(850);
    // Long before (past the lead) or long after: not this takeover's.
    expect(gapAround([{ from: at - 60_000, to: at - 59_000 }, { from: at + 20_000, to: at + 21_000 }], at, at + 30_000)).toBeNull();
    expect(gapAround([{ from: at - 200, to: null }], at, at + 300)).toBe(500);
  });
});
