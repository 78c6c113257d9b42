import { describe, expect, it } from 'vitest';
import { fromHistory } from '../../src/availability/ctmc.js';
import type { HaEvent } from '../../src/ports.js';

const T0 = Date.parse('2025-01-01T00:00:00.000Z');
const H = 3_600_000;
function ev(type: string, atMs: number, details?: Record<string, unknown>): HaEvent {
  return {
    type,
    node: 'head-a',
    epoch: 1,
    time: new Date(atMs).toISOString(),
    severity: 'info',
    message: type,
    ...(details ? { details } : {}),
  };
}

describe('fromHistory', () => {
  it('estimates MTTF, MTTR and availability from incidents and failovers', () => {
    const events = [
      ev('agent_started', T0),
      ev('service_failed', T0 + 10 * H, { service: 'vm' }),
      // recovered 30 min after the first failed probe
      ev('service_recovered', T0 + 10.5 * H, { service: 'vm', recoveryMs: 0.5 * H }),
      ev('failover', T0 + 50 * H, { downtimeMs: 0.5 * H }),
      ev('heartbeat_ok', T0 + 100 * H),
    ];
    const r = fromHistory(events);
    expect(r.windowHours).toBeCloseTo(100, 9);
    expect(r.failures).toBe(2);
    expect(r.downtimeHours).toBeCloseTo(1, 9);
    expect(r.availability).toBeCloseTo(0.99, 9);
    expect(r.mttrHours).toBeCloseTo(0.5, 9);
    expect(r.mttfHours).toBeCloseTo(49.5, 9);
  });

  it("a sidecar's own failover event counts from the peer going silent to the VIP being up", () => {
    const cases: { details: Record<string, unknown>; ms: number }[] = [
      { details: { detect_ms: 500, election_ms: 7, promote_ms: 3, vip_ms: 1, since_peer_dead_ms: 208 }, ms: 708 },
      { details: { detect_ms: null, election_ms: 20, promote_ms: 30, vip_ms: 5, since_peer_dead_ms: null }, ms: 55 },
      { details: { downtimeMs: 900, detect_ms: 500, since_peer_dead_ms: 208 }, ms: 900 },
      { details: {}, ms: 0 },
    ];
    for (const c of cases) {
      const r = fromHistory([ev('agent_started', T0), ev('failover', T0 + H, c.details), ev('heartbeat_ok', T0 + 2 * H)]);
      expect(r.failures, JSON.stringify(c.details)).toBe(1);
      expect(r.downtimeHours * H, JSON.stringify(c.details)).toBeCloseTo(c.ms, 6);
    }
  });

  it('counts overlapping outages once and keeps open incidents until the end of the window', () => {
    const events = [
      ev('service_failed', T0, { service: 'vm' }),
      ev('service_failed', T0 + 1 * H, { service: 'cumulus' }),
      ev('service_recovered', T0 + 2 * H, { service: 'vm' }),
      ev('service_failed', T0 + 8 * H, { service: 'vm' }),
      ev('status', T0 + 10 * H),
    ];
    const r = fromHistory(events);
    // vm down 0-2 h, cumulus down 1-10 h (never recovered), vm down 8-10 h: union 0-10 h
    expect(r.failures).toBe(3);
    expect(r.incidents.filter((i) => i.open).map((i) => i.subject).sort()).toEqual(['cumulus', 'vm']);
    expect(r.downtimeHours).toBeCloseTo(10, 9);
    expect(r.availability).toBeCloseTo(0, 9);
  });

  it('accepts an explicit observation window and handles an empty history', () => {
    const r = fromHistory([ev('service_failed', T0 + H, { service: 'vm' }), ev('service_recovered', T0 + 2 * H, { service: 'vm' })], {
      startMs: T0,
      endMs: T0 + 10 * H,
    });
    expect(r.availability).toBeCloseTo(0.9, 9);
    expect(r.mttfHours).toBeCloseTo(9, 9);
    const empty = fromHistory([]);
    expect(empty).toMatchObject({ failures: 0, availability: null, mttfHours: null, windowStart: null });
  });
});
