/**
 * PostgreSQL streaming replication inside TLS (`tls` configured): two real embedded servers on loopback
 * with the certificates of `nimbus-ha certs init`. The walsender's connection is SSL with the standby's
 * client certificate, a replication connection without SSL (or without a client certificate of the CA)
 * is refused, the standby checks the primary's certificate against the host it connects to, and the
 * server's copies of the key are readable by the server's OS user only.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PostgresNode } from '../../adapters/postgres/embedded.js';
import { certsInit } from '../../src/cli/certs.js';
import { HaError } from '../../src/errors.js';
import { DbFixture, q, REPL_PW, until } from '../integration/db-fixture.js';

const files = (dir: string, name: string) => ({ cert: join(dir, `${name}.crt`), key: join(dir, `${name}.key`), ca: join(dir, 'ca.crt') });

/**
 * A replication-protocol session to `port` as the replication role: 'ok' once IDENTIFY_SYSTEM answers,
 * else the SQLSTATE (or 'no-sqlstate' for a TLS failure) and message. Bounded: a handshake the server
 * aborts can leave pg's client waiting.
 */
async function replicationConnect(host: string, port: number, ssl: pg.ClientConfig['ssl']): Promise<{ code: string; message: string }> {
  const c = new pg.Client({ host, port, user: 'replicator', password: REPL_PW, database: 'postgres', ssl, connectionTimeoutMillis: 5000, ...({ replication: 'true' } as object) });
  c.on('error', () => undefined);
  let timer: NodeJS.Timeout | undefined;
  const attempt = (async () => {
    await c.connect();
    await c.query('IDENTIFY_SYSTEM');
    return { code: 'ok', message: '' };
  })().catch((err: unknown) => {
    const e = err as { code?: string; message?: string };
    return { code: e.code ?? 'no-sqlstate', message: e.message ?? String(err) };
  });
  const bound = new Promise<{ code: string; message: string }>((resolve) => {
    timer = setTimeout(() => resolve({ code: 'timeout', message: 'no answer within 8 s' }), 8000);
  });
  try {
    return await Promise.race([attempt, bound]);
  } finally {
    clearTimeout(timer);
    (c as unknown as { connection?: { stream?: { destroy(): void } } }).connection?.stream?.destroy();
    void c.end().catch(() => undefined);
  }
}

describe('PostgreSQL replication over SSL with tls configured (real embedded servers)', () => {
  const fx = new DbFixture();
  let certs = '';
  let primary: PostgresNode;
  let standby: PostgresNode;

  beforeAll(async () => {
    await fx.setup();
    certs = join(fx.root, 'certs');
    certsInit({ dir: certs, nodes: ['alpha', 'beta'], witness: false });
    // 127.0.0.2 reaches the primary too but is not in its certificate: the host name check has to refuse it.
    primary = await fx.node('alpha', { listenAddresses: '127.0.0.1,127.0.0.2' }, { tls: files(certs, 'alpha') });
    standby = await fx.node('beta', {}, { tls: files(certs, 'beta') });
    await primary.init({ template: fx.template });
    await q(primary, 'create table t (id int primary key, v text)');
    await q(primary, "insert into t select g, 'before clone' from generate_series(1, 50) g");
    const backup = await primary.baseBackup({ slot: standby.slotName });
    await standby.clone(backup, primary.endpoint(), { force: false });
  });
  afterAll(async () => fx.teardown());

  it('streams over SSL: pg_stat_ssl shows the walsender with ssl and the standby\'s certificate, the standby uses verify-full', async () => {
    await q(primary, "insert into t select g, 'after clone' from generate_series(51, 80) g");
    await until(async () => (await q<{ n: string }>(standby, 'select count(*) as n from t'))[0].n === '80', 20_000, 'rows on the standby');
    const rows = await q<{ application_name: string; ssl: boolean; version: string; client_dn: string | null }>(
      primary,
      'select r.application_name, s.ssl, s.version, s.client_dn from pg_stat_replication r join pg_stat_ssl s on s.pid = r.pid',
    );
    expect(rows).toEqual([expect.objectContaining({ application_name: 'beta', ssl: true })]);
    expect(rows[0].version).toMatch(/^TLSv1\.[23]$/);
    expect(rows[0].client_dn).toMatch(/CN=beta/);
    const wr = await q<{ conninfo: string }>(standby, 'select conninfo from pg_stat_wal_receiver');
    expect(wr[0].conninfo).toMatch(/sslmode=verify-full/);
    expect(wr[0].conninfo).toMatch(/sslrootcert=/);
    expect(wr[0].conninfo).not.toContain(REPL_PW);
  });

  it('refuses a replication connection without SSL, and one over SSL without a client certificate of the CA', async () => {
    const port = primary.endpoint().port;
    const clear = await replicationConnect('127.0.0.1', port, false);
    expect(clear.code).toBe('28000');
    expect(clear.message).toMatch(/no pg_hba\.conf entry for replication connection.*no encryption/);

    const ca = readFileSync(join(certs, 'ca.crt'), 'utf8');
    const noCert = await replicationConnect('127.0.0.1', port, { ca, rejectUnauthorized: true });
    expect(noCert).toEqual({ code: '28000', message: expect.stringMatching(/requires a valid client certificate/) });

    // Another cluster's CA and certificate: the server does not accept it, nor does the client the server's.
    const other = join(fx.root, 'other-certs');
    certsInit({ dir: other, nodes: ['beta'], witness: false });
    const foreign = await replicationConnect('127.0.0.1', port, { ca, cert: readFileSync(join(other, 'beta.crt'), 'utf8'), key: readFileSync(join(other, 'beta.key'), 'utf8') });
    expect(foreign.code).toMatch(/UNKNOWN_CA|^28000$/);

    // With the cluster's certificate and the password it works (what the standby does).
    const ok = await replicationConnect('127.0.0.1', port, { ca, cert: readFileSync(join(certs, 'beta.crt'), 'utf8'), key: readFileSync(join(certs, 'beta.key'), 'utf8') });
    expect(ok.code).toBe('ok');
  });

  it('checks that the primary\'s certificate names the host the standby connects to', async () => {
    const err = await standby.identifyPrimary({ host: '127.0.0.2', port: primary.endpoint().port }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(HaError);
    expect((err as HaError).message).toMatch(/127\.0\.0\.2/);
    expect((err as HaError).message).toMatch(/altnames|certificate/i);
    const ok = await standby.identifyPrimary({ host: 'localhost', port: primary.endpoint().port });
    expect(ok.timeline).toBe(1);
  });

  it('keeps the server\'s copies of certificate, key and CA outside the data directory, mode 0600, owned by the server user', async () => {
    const expectedUid = process.getuid?.() === 0 ? Number(execFileSync('id', ['-u', 'postgres']).toString().trim()) : process.getuid?.();
    for (const n of [primary, standby]) {
      const dir = `${n.dataDir}.tls`;
      expect((await stat(dir)).mode & 0o777).toBe(0o700);
      for (const f of ['node.crt', 'node.key', 'ca.crt']) {
        const st = await stat(join(dir, f));
        expect(st.mode & 0o777).toBe(0o600);
        expect(st.uid).toBe(expectedUid);
      }
      const conf = readFileSync(join(n.dataDir, 'nimbus-ha.conf'), 'utf8');
      expect(conf).toMatch(/^ssl = on$/m);
      const hba = readFileSync(join(n.dataDir, 'pg_hba.conf'), 'utf8');
      expect(hba).not.toMatch(/^host\s+replication/m);
      expect(hba).toMatch(/^hostssl replication replicator 127\.0\.0\.1\/32 scram-sha-256 clientcert=verify-ca$/m);
    }
    // The clone did not carry the primary's key: the standby's copy is its own.
    expect(readFileSync(join(`${standby.dataDir}.tls`, 'node.key'), 'utf8')).toBe(readFileSync(join(certs, 'beta.key'), 'utf8'));
  });
});
