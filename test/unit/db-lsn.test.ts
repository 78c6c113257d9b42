import { describe, expect, it } from 'vitest';
import { bytesToLsn, canFollow, lsnToBytes, parseTimelineHistory } from '../../src/replication/db/lsn.js';
import { compareArchiveNames, isArchiveFileName, slotNameFor } from '../../src/replication/db/wal-names.js';
import { dbConfigSchema, parseDbConfig } from '../../src/replication/db/config.js';

describe('LSN arithmetic', () => {
  it.each([
    ['0/0', 0],
    ['0/3000060', 0x3000060],
    ['1/0', 2 ** 32],
    ['A/FFFFFFFF', 10 * 2 ** 32 + 0xffffffff],
  ])('%s <-> %d', (lsn, bytes) => {
    expect(lsnToBytes(lsn)).toBe(bytes);
    expect(bytesToLsn(bytes)).toBe(lsn);
  });
  it('rejects garbage', () => {
    expect(() => lsnToBytes('3000060')).toThrow(/not a PostgreSQL LSN/);
  });
});

describe('timeline history and canFollow', () => {
  const history = parseTimelineHistory('1\t0/5000100\tno recovery target specified\n\n2\t0/7000000\tno recovery target specified\n');
  it('parses history files', () => {
    expect(history).toEqual([
      { timeline: 1, switchLsn: '0/5000100', switchBytes: 0x5000100, reason: 'no recovery target specified' },
      { timeline: 2, switchLsn: '0/7000000', switchBytes: 0x7000000, reason: 'no recovery target specified' },
    ]);
  });
  it('follows when the local WAL ends at or before the fork', () => {
    expect(canFollow({ timeline: 1, endBytes: 0x5000100 }, { timeline: 3, history }).ok).toBe(true);
    expect(canFollow({ timeline: 2, endBytes: 0x6000000 }, { timeline: 3, history }).ok).toBe(true);
    expect(canFollow({ timeline: 3, endBytes: 0x9000000 }, { timeline: 3, history }).ok).toBe(true);
  });
  it('refuses when the local server wrote past the fork, reporting the diverged range', () => {
    const v = canFollow({ timeline: 1, endBytes: 0x5000200 }, { timeline: 3, history });
    expect(v).toMatchObject({ ok: false, divergedFrom: 0x5000100, divergedTo: 0x5000200 });
  });
  it('refuses a timeline unknown to the primary', () => {
    expect(canFollow({ timeline: 4, endBytes: 1 }, { timeline: 3, history }).ok).toBe(false);
  });
});

describe('archive file names', () => {
  it.each(['000000010000000000000003', '00000002.history', '000000010000000000000003.partial', '000000010000000000000003.00000028.backup'])('accepts %s', (n) => {
    expect(isArchiveFileName(n)).toBe(true);
  });
  it.each(['', '../etc/passwd', '00000001000000000000000', '000000010000000000000003/x', 'abcdefabcdefabcdefabcdef', '00000002.history.tmp', '.000000010000000000000003'])('refuses %j', (n) => {
    expect(isArchiveFileName(n)).toBe(false);
  });
  it('orders history files first, then segments', () => {
    expect(['000000020000000000000001', '00000002.history', '000000010000000000000009'].sort(compareArchiveNames)).toEqual([
      '00000002.history',
      '000000010000000000000009',
      '000000020000000000000001',
    ]);
  });
  it('derives slot names', () => {
    expect(slotNameFor('Head-Node.2')).toBe('head_node_2');
  });
});

describe('db config', () => {
  const base = { dataDir: '/var/lib/nha/pg', archiveDir: '/var/lib/nha/archive' };
  it('takes passwords from the environment and fills defaults', () => {
    const c = parseDbConfig(base, { NHA_DB_SUPERUSER_PASSWORD: 's', NHA_DB_REPL_PASSWORD: 'r' });
    expect(c).toMatchObject({ mode: 'embedded', port: 5432, sync: 'async', onStandbyLoss: 'degrade', replicationPassword: 'r' });
  });
  it('reports every problem at once and rejects unknown keys', () => {
    expect(() => parseDbConfig({ ...base, mode: 'external', archiveDir: '/var/lib/nha/pg/archive', bogus: 1 }, {})).toThrow(
      /superuserPassword[\s\S]*replicationPassword|bogus/,
    );
    const r = dbConfigSchema.safeParse({ ...base, superuserPassword: 'a', replicationPassword: 'b', mode: 'external', archiveDir: '/var/lib/nha/pg/archive' });
    expect(r.success).toBe(false);
    const paths = r.success ? [] : r.error.issues.map((i) => i.path.join('.'));
    expect(paths).toEqual(expect.arrayContaining(['pgCtlPath', 'connectionString', 'archiveDir']));
  });
  it('never echoes a password in its errors', () => {
    try {
      parseDbConfig({ ...base, superuserPassword: 'hunter2', replicationPassword: 'x', port: -1 }, {});
      expect.unreachable();
    } catch (e) {
      expect(String(e)).not.toContain('hunter2');
    }
  });
});
