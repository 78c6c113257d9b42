import { describe, expect, it } from 'vitest';
import { archiveCommand, confQuote, conninfoQuote, renderHba, renderNodeConf, scramVerifier, shQuote } from '../../adapters/postgres/conf.js';
import { parseControlFile } from '../../adapters/postgres/pgcontrol.js';
import { redact } from '../../adapters/postgres/proc.js';
import { statusFromRow } from '../../adapters/postgres/status-sql.js';

const standbyRow = {
  rec: true,
  cur: null,
  cur_tli: null,
  replay: '0/3000060',
  receive: '0/3000060',
  replay_age_ms: 3_600_000,
  wr_status: 'streaming',
  wr_tli: 2,
  wr_end: '0/3000060',
  ckpt_tli: 1,
};

describe('status from the status query row', () => {
  it('a caught-up standby of an idle primary has no lag, however old its last replayed commit', () => {
    expect(statusFromRow(standbyRow)).toEqual({
      running: true,
      mode: 'standby',
      position: { lsn: '0/3000060', bytes: 0x3000060, timeline: 2 },
      streaming: true,
      lagBytes: 0,
      lagMs: 0,
    });
  });
  it('a standby behind reports bytes and the age of its last replayed commit', () => {
    const s = statusFromRow({ ...standbyRow, wr_end: '0/3001060', replay_age_ms: 250.4 });
    expect(s).toMatchObject({ lagBytes: 0x1000, lagMs: 250 });
  });
  it('a standby that does not stream reports no lag figure (its freshness is unknown)', () => {
    const s = statusFromRow({ ...standbyRow, wr_status: null, wr_tli: null, wr_end: null });
    expect(s).toEqual({ running: true, mode: 'standby', position: { lsn: '0/3000060', bytes: 0x3000060, timeline: 1 }, streaming: false });
  });
  it('a primary reports its write position and timeline from the WAL file name', () => {
    expect(statusFromRow({ ...standbyRow, rec: false, cur: '0/5000000', cur_tli: '0000000A' })).toEqual({
      running: true,
      mode: 'primary',
      position: { lsn: '0/5000000', bytes: 0x5000000, timeline: 10 },
    });
  });
});

describe('config rendering and quoting', () => {
  it('quotes for postgresql.conf, conninfo and sh', () => {
    expect(confQuote("it's a \\ test")).toBe("'it''s a \\\\ test'");
    expect(conninfoQuote("p'w")).toBe("'p\\'w'");
    expect(shQuote("a'b")).toBe(`'a'\\''b'`);
    expect(archiveCommand('/var/arch')).toContain(`f='/var/arch'/%f`);
  });
  it('renders standby settings only for a standby', () => {
    const base = { listenAddresses: '127.0.0.1', port: 5433, archiveDir: '/a', archiveTimeoutS: 60, maxSlotWalKeepSize: '1GB', settings: { shared_buffers: '16MB' } };
    expect(renderNodeConf({ ...base, standby: null })).not.toContain('primary_conninfo');
    const s = renderNodeConf({ ...base, standby: { conninfo: "host=h password='x'", slot: 'beta' } });
    expect(s).toContain(`primary_conninfo = 'host=h password=''x'''`);
    expect(s).toContain(`primary_slot_name = 'beta'`);
    expect(s).toContain('shared_buffers = 16MB');
  });
  it('pg_hba allows replication only to the replication role, with scram, from loopback and configured networks', () => {
    const hba = renderHba({ superuser: 'postgres', replicationUser: 'replicator', cidrs: ['10.1.0.0/24'] });
    expect(hba).toContain('host replication replicator 10.1.0.0/24 scram-sha-256');
    expect(hba).toContain('host replication replicator 127.0.0.1/32 scram-sha-256');
    expect(hba).not.toMatch(/trust|md5/);
  });
  it('builds SCRAM verifiers in PostgreSQL format', () => {
    expect(scramVerifier('pw', 4096, Buffer.alloc(16))).toMatch(/^SCRAM-SHA-256\$4096:A{22}==\$[A-Za-z0-9+/=]{44}:[A-Za-z0-9+/=]{44}$/);
  });
});

describe('redaction', () => {
  it('removes known secrets and any password= value', () => {
    expect(redact('auth failed for s3cret; conninfo password=abc host=x', ['s3cret'])).toBe('auth failed for ***; conninfo password=*** host=x');
  });
});

describe('pg_control', () => {
  it('reads state, checkpoint and timeline at their offsets', () => {
    const b = Buffer.alloc(64);
    b.writeBigUInt64LE(7711300384150097551n, 0);
    b.writeInt32LE(1, 16);
    b.writeUInt32LE(0x5d9490, 32);
    b.writeUInt32LE(1, 36);
    b.writeUInt32LE(3, 48);
    expect(parseControlFile(b)).toMatchObject({ systemId: '7711300384150097551', cleanShutdown: true, checkpointBytes: 2 ** 32 + 0x5d9490, timeline: 3, stateName: 'shut down' });
  });

  it('a standby shut down in recovery is not a clean end of WAL (its checkpoint is only the last restart point)', () => {
    const b = Buffer.alloc(64);
    b.writeInt32LE(2, 16);
    expect(parseControlFile(b)).toMatchObject({ cleanShutdown: false, stateName: 'shut down in recovery' });
  });
});
