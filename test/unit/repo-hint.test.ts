/**
 * The change-hint skip decision as a table, hint parsing, and how the repository data path takes the
 * primary's hint from heartbeats (freshness, out-of-order datagrams).
 */
import { describe, expect, it } from 'vitest';
import { parseHint, skipDecision, type SkipInput } from '../../src/replication/repo/hint.js';
import { RepoDataPath } from '../../src/replication/repo/data-path.js';
import { repoConfigSchema } from '../../src/replication/repo/config.js';
import { EventBus } from '../../src/events/bus.js';
import type { Clock, ObjectStore } from '../../src/ports.js';
import { manualClock } from '../helpers/manual-clock.js';

const base: SkipInput = {
  now: 10_000,
  hint: { instance: 'i1', generation: 7, ok: true, error: null },
  basis: { instance: 'i1', generation: 7 },
  basisPassStartedAt: 5_000,
  lastPassClean: true,
  maxAgeMs: 30_000,
  deep: false,
  force: false,
  distrusted: false,
};

describe('skipDecision', () => {
  const rows: Array<[string, Partial<SkipInput>, boolean, RegExp]> = [
    ['everything unchanged', {}, true, /unchanged/],
    ['a forced pass (switchover, operator)', { force: true }, false, /requested/],
    ['the deep pass', { deep: true }, false, /deep/],
    ['skipping disabled', { maxAgeMs: 0 }, false, /disabled/],
    ['no hint (none configured, none received, too old)', { hint: null }, false, /no change hint/],
    ['watcher error or overflow flagged', { hint: { instance: 'i1', generation: 7, ok: false, error: 'ENOSPC' } }, false, /not usable: ENOSPC/],
    ['watcher still starting', { hint: { instance: 'i1', generation: 7, ok: false, error: null } }, false, /not usable/],
    ['hint distrusted after a miss', { distrusted: true }, false, /missed a change/],
    ['no clean pass with a hint yet', { basis: null, basisPassStartedAt: null }, false, /no clean full pass/],
    ['last pass left work behind', { lastPassClean: false }, false, /left work behind/],
    ['source sidecar restarted (other instance, same number)', { hint: { instance: 'i2', generation: 7, ok: true, error: null } }, false, /restarted/],
    ['generation moved', { hint: { instance: 'i1', generation: 8, ok: true, error: null } }, false, /generation 7 -> 8/],
    ['generation lower (never skip on a mismatch)', { hint: { instance: 'i1', generation: 6, ok: true, error: null } }, false, /generation 7 -> 6/],
    ['last full pass too old', { now: 35_000 }, false, /30000 ms old/],
    ['just below the max age', { now: 34_999 }, true, /unchanged/],
  ];
  it.each(rows)('%s', (_name, change, skip, reason) => {
    const d = skipDecision({ ...base, ...change });
    expect(d.skip).toBe(skip);
    expect(d.reason).toMatch(reason);
  });
});

describe('parseHint', () => {
  it('accepts the reported shape and refuses anything else', () => {
    expect(parseHint({ instance: 'a', generation: 3, ok: true, error: null })).toEqual({ instance: 'a', generation: 3, ok: true, error: null });
    for (const bad of [null, undefined, 'x', {}, { instance: '', generation: 1, ok: true }, { instance: 'a', generation: 1.5, ok: true }, { instance: 'a', generation: '1', ok: true }, { instance: 'a', generation: 1 }]) {
      expect(parseHint(bad)).toBeNull();
    }
  });
});

describe('RepoDataPath: the primary hint from heartbeats', () => {
  let t = 0;
  const clock: Clock = manualClock(() => t, 1_700_000_000_000);
  const store = {} as ObjectStore;
  const make = () =>
    new RepoDataPath({
      config: repoConfigSchema.parse({ local: { endpoint: 'http://127.0.0.1:1' }, peer: { endpoint: 'http://127.0.0.1:2' } }),
      local: store,
      peer: store,
      bus: new EventBus('b', () => 1),
      clock,
    });
  const hint = (generation: number, instance = 'p1') => ({ changeHint: { instance, generation, ok: true, error: null } });

  it('keeps the newest generation per instance, takes a new instance, and forgets a hint older than 3 heartbeats', () => {
    t = 0;
    const dp = make();
    const source = () => dp.replicator.status().hint.source;
    expect(source()).toBeNull();
    dp.onPeerStatus(hint(5), { heartbeatMs: 100 });
    expect(source()?.generation).toBe(5);
    // A datagram that left earlier on the other path.
    dp.onPeerStatus(hint(4), { heartbeatMs: 100 });
    expect(source()?.generation).toBe(5);
    dp.onPeerStatus(hint(2, 'p2'), { heartbeatMs: 100 });
    expect(source()).toMatchObject({ instance: 'p2', generation: 2 });
    t = 300;
    expect(source()).not.toBeNull();
    t = 301;
    expect(source()).toBeNull();
    dp.onPeerStatus(hint(3, 'p2'), { heartbeatMs: 100 });
    expect(source()?.generation).toBe(3);
    // A heartbeat without a hint (watcher not configured there) removes it at once.
    dp.onPeerStatus({}, { heartbeatMs: 100 });
    expect(source()).toBeNull();
  });
});
