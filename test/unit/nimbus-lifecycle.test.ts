import { describe, expect, it } from 'vitest';
import { instanceState, type InstanceTimes } from '../../fixtures/nimbus-vm-service/lifecycle.js';

const base: InstanceTimes = {
  launchedAtMs: 1000,
  rebootedAtMs: null,
  terminateRequestedAtMs: null,
  pendingMs: 100,
  rebootMs: 50,
  shutdownMs: 200,
};

describe('instance lifecycle derived from timestamps', () => {
  it.each([
    ['just launched', {}, 1000, 'pending'],
    ['boot finished', {}, 1100, 'running'],
    ['rebooting', { rebootedAtMs: 2000 }, 2049, 'pending'],
    ['rebooted', { rebootedAtMs: 2000 }, 2050, 'running'],
    ['shutting down', { terminateRequestedAtMs: 3000 }, 3199, 'shutting-down'],
    ['terminated', { terminateRequestedAtMs: 3000 }, 3200, 'terminated'],
    ['terminated while pending', { terminateRequestedAtMs: 1010 }, 1050, 'shutting-down'],
    ['terminate wins over reboot', { rebootedAtMs: 3000, terminateRequestedAtMs: 3001 }, 3010, 'shutting-down'],
  ] as const)('%s', (_name, change, now, expected) => {
    expect(instanceState({ ...base, ...change }, now)).toBe(expected);
  });

  it('zero delays skip the transient states', () => {
    const t = { ...base, pendingMs: 0, shutdownMs: 0 };
    expect(instanceState(t, 1000)).toBe('running');
    expect(instanceState({ ...t, terminateRequestedAtMs: 1000 }, 1000)).toBe('terminated');
  });
});
