import { describe, expect, it } from 'vitest';
import { peerMaintenanceWins } from '../../src/cluster/heartbeat.js';

describe('peerMaintenanceWins (maintenance is cluster-wide: the newest setting wins)', () => {
  const rows: Array<[string, { on: boolean; version: number }, [boolean, number] | undefined, boolean]> = [
    ['a newer setting from the peer', { on: false, version: 3 }, [true, 4], true],
    ['a newer "off" from the peer', { on: true, version: 4 }, [false, 5], true],
    ['an older setting from the peer', { on: true, version: 5 }, [false, 4], false],
    ['the same setting', { on: true, version: 5 }, [true, 5], false],
    ['same version, peer paused, we did not: pausing wins', { on: false, version: 5 }, [true, 5], true],
    ['same version, we paused, peer did not: ours stays', { on: true, version: 5 }, [false, 5], false],
    ['a peer that sends none (older release)', { on: false, version: 0 }, undefined, false],
    ['a malformed value', { on: false, version: 0 }, ['yes', 9] as unknown as [boolean, number], false],
    ['a fractional version', { on: false, version: 0 }, [true, 1.5], false],
  ];
  it.each(rows)('%s', (_name, local, peer, wins) => {
    expect(peerMaintenanceWins(local, peer)).toBe(wins);
  });
});
