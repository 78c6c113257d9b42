/**
 * External mode against the distribution's PostgreSQL (both nodes on the same major version), when
 * installed: nimbus-ha only gets pg_ctl and a connection string, the operator owns initdb and pg_hba.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, chown, mkdir, mkdtemp, rm, writeFile, appendFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PostgresNode } from '../../adapters/postgres/embedded.js';
import { readControlFile } from '../../adapters/postgres/pgcontrol.js';
import { scramVerifier } from '../../adapters/postgres/conf.js';
import { parseDbConfig } from '../../src/replication/db/config.js';
import { lsnToBytes } from '../../src/replication/db/lsn.js';
import { freePort, q, REPL_PW, SUPER_PW, until } from './db-fixture.js';

const BIN = '/usr/lib/postgresql/15/bin';
const available = existsSync(join(BIN, 'pg_ctl')) && existsSync(join(BIN, 'pg_controldata'));

describe.skipIf(!available)(`external mode (${BIN}, skipped when absent)`, () => {
  let root = '';
  const nodes: PostgresNode[] = [];
  const asPg = process.getuid?.() === 0 ? { uid: Number(execFileSync('id', ['-u', 'postgres']).toString()), gid: Number(execFileSync('id', ['-g', 'postgres']).toString()) } : null;

  async function external(name: string): Promise<PostgresNode> {
    const dir = join(root, name);
    await mkdir(dir, { mode: 0o755 });
    if (asPg) await chown(dir, asPg.uid, asPg.gid);
    const port = await freePort();
    const cfg = parseDbConfig(
      {
        mode: 'external',
        dataDir: join(dir, 'data'),
        archiveDir: join(dir, 'archive'),
        port,
        pgCtlPath: join(BIN, 'pg_ctl'),
        connectionString: `postgres://postgres@127.0.0.1:${port}/postgres`,
        superuserPassword: SUPER_PW,
        replicationPassword: REPL_PW,
        settings: { shared_buffers: '16MB', max_connections: '20' },
      },
      {},
    );
    const n = new PostgresNode(name, cfg, { fsyncClone: false });
    nodes.push(n);
    return n;
  }

  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'nha-dbext-'));
    await chmod(root, 0o755);
  });
  afterAll(async () => {
    for (const n of nodes) await n.stop('immediate').catch(() => undefined);
    await rm(root, { recursive: true, force: true });
  });

  it('runs, clones and streams an operator-initialised cluster; pg_control matches pg_controldata', async () => {
    const a = await external('ext-a');
    const b = await external('ext-b');
    // What an operator would have done: initdb and pg_hba.conf.
    await mkdir(a.dataDir, { mode: 0o700 });
    const pw = join(root, 'pw');
    await writeFile(pw, SUPER_PW);
    if (asPg) {
      await chown(a.dataDir, asPg.uid, asPg.gid);
      await chown(pw, asPg.uid, asPg.gid);
    }
    execFileSync(join(BIN, 'initdb'), ['-D', a.dataDir, '-U', 'postgres', `--pwfile=${pw}`, '-A', 'scram-sha-256', '--wal-segsize=1'], { uid: asPg?.uid, gid: asPg?.gid, stdio: 'ignore' });
    await appendFile(join(a.dataDir, 'pg_hba.conf'), 'host replication replicator 127.0.0.1/32 scram-sha-256\n');
    await a.start();
    await q(a, `create role replicator with replication login password '${scramVerifier(REPL_PW)}'`);
    await q(a, 'create table t (id int)');
    await q(a, 'insert into t select generate_series(1, 10)');

    await b.clone(await a.baseBackup({ slot: b.slotName }), a.endpoint(), { force: false });
    await q(a, 'insert into t values (11)');
    await until(async () => (await q<{ n: string }>(b, 'select count(*) as n from t'))[0].n === '11', 20_000, 'row 11 on the external standby');

    await b.stop('fast');
    const ours = await readControlFile(b.dataDir);
    const theirs = execFileSync(join(BIN, 'pg_controldata'), [b.dataDir], { env: { ...process.env, LC_ALL: 'C' } }).toString();
    const field = (k: string) => new RegExp(`^${k}:\\s*(.+)$`, 'm').exec(theirs)?.[1].trim();
    expect(ours.stateName).toBe(field('Database cluster state'));
    expect(ours.checkpointBytes).toBe(lsnToBytes(field('Latest checkpoint location')!));
    expect(ours.timeline).toBe(Number(field("Latest checkpoint's TimeLineID")));
    expect(ours.systemId).toBe(field('Database system identifier'));
  });
});
