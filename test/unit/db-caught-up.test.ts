import { describe, expect, it } from 'vitest';
import { standbyCaughtUp } from '../../src/replication/db/data-path.js';
import { dbConfigSchema } from '../../src/replication/db/config.js';

const MiB = 1024 * 1024;

describe('a database standby is caught up', () => {
  it.each([
    { name: 'streaming, fully replayed', s: { mode: 'standby', streaming: true, lagBytes: 0 }, max: MiB, want: true },
    { name: 'streaming, a commit received and not yet replayed', s: { mode: 'standby', streaming: true, lagBytes: 4096 }, max: MiB, want: true },
    { name: 'streaming, exactly at the limit', s: { mode: 'standby', streaming: true, lagBytes: MiB }, max: MiB, want: true },
    { name: 'streaming, replay past the limit behind', s: { mode: 'standby', streaming: true, lagBytes: MiB + 1 }, max: MiB, want: false },
    { name: 'limit 0: only when fully replayed', s: { mode: 'standby', streaming: true, lagBytes: 1 }, max: 0, want: false },
    { name: 'not streaming (archive recovery, or cut off)', s: { mode: 'standby', streaming: false, lagBytes: 0 }, max: MiB, want: false },
    { name: 'a primary is not a caught-up standby', s: { mode: 'primary', streaming: undefined, lagBytes: undefined }, max: MiB, want: false },
    { name: 'no status yet', s: null, max: MiB, want: false },
  ] as const)('$name', ({ s, max, want }) => {
    expect(standbyCaughtUp(s as Parameters<typeof standbyCaughtUp>[0], max)).toBe(want);
  });

  it('defaults to 1 MiB of replay lag', () => {
    const base = { dataDir: '/var/lib/nha/pg', archiveDir: '/var/lib/nha/archive', superuserPassword: 's'.repeat(20), replicationPassword: 'r'.repeat(20) };
    expect(dbConfigSchema.parse(base).caughtUpLagBytes).toBe(MiB);
    expect(dbConfigSchema.safeParse({ ...base, caughtUpLagBytes: -1 }).success).toBe(false);
  });
});
