/**
 * `nimbus-ha run` with `tls` and an embedded PostgreSQL on both nodes (real processes, the certificates of
 * `nimbus-ha certs init`): the standby clones through the sidecar API (inside TLS) and then streams over
 * PostgreSQL's SSL, which the primary's pg_stat_ssl shows; a switchover makes the old primary follow the
 * new one over SSL as well (sslmode=verify-full against the new primary's db.advertiseHost).
 */
import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { copyFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Cluster, cliPath } from '../../fixtures/cluster.js';
import { directDb, until } from '../helpers/wait.js';

const run = promisify(execFile);

async function walsenders(port: number): Promise<{ application_name: string; ssl: boolean; client_dn: string | null }[]> {
  const c = new pg.Client({ connectionString: directDb(port), connectionTimeoutMillis: 5000 });
  c.on('error', () => undefined);
  await c.connect();
  try {
    return (await c.query('select r.application_name, s.ssl, s.client_dn from pg_stat_replication r join pg_stat_ssl s on s.pid = r.pid')).rows;
  } finally {
    await c.end();
  }
}

describe('PostgreSQL replication between real nodes over SSL (tls configured)', () => {
  let c: Cluster;
  beforeAll(async () => {
    c = new Cluster({ tls: true, db: { sync: 'async' } });
    await c.start();
    await c.waitFor((a, b) => a?.role === 'primary' && b?.role === 'standby', 60_000, 'a primary, b standby over TLS');
    await until('b streaming', async () => (await c.status('b'))!.replication.db.streaming === true, 90_000);
  }, 180_000);
  afterAll(async () => {
    await c?.stop();
  });

  it('the standby streams over SSL with its certificate, before and after a switchover', async () => {
    expect(await walsenders(c.nodes.a.pgPort)).toEqual([expect.objectContaining({ application_name: 'b', ssl: true, client_dn: expect.stringMatching(/CN=b/) })]);
    // A switchover is refused while the standby is not caught up on every data path (a busy machine).
    await until('b caught up on every data path', async () => (await c.status('a'))?.peers?.[0]?.caught_up === true, 90_000);
    expect((await c.admin('a', '/admin/switchover')).status).toBe(202);
    await c.waitFor((a, b) => a?.role === 'standby' && b?.role === 'primary', 60_000, 'b primary after the switchover');
    await until('a streaming from b', async () => (await c.status('a'))!.replication.db.streaming === true, 90_000);
    expect(await walsenders(c.nodes.b.pgPort)).toEqual([expect.objectContaining({ application_name: 'a', ssl: true, client_dn: expect.stringMatching(/CN=a/) })]);
  }, 240_000);

  it("a renewed certificate reaches the node's PostgreSQL on SIGHUP (no restart): new sessions see it, replication goes on", async () => {
    const ca = readFileSync(join(c.certDir, 'ca.crt'), 'utf8');
    /** The serial of the certificate b's PostgreSQL presents to a new SSL session. */
    const pgSerial = async () => {
      let serial = '';
      const cl = new pg.Client({
        connectionString: directDb(c.nodes.b.pgPort),
        connectionTimeoutMillis: 5000,
        ssl: { ca, checkServerIdentity: (_host, cert) => void (serial = cert.serialNumber) },
      });
      cl.on('error', () => undefined);
      await cl.connect();
      await cl.end();
      return serial.toUpperCase();
    };
    const before = await pgSerial();
    const out = join(c.dir, 'renewed-b');
    await run(process.execPath, [cliPath, 'certs', 'issue', '--dir', c.certDir, '--name', 'b', '--out-dir', out, '--san', 'b=127.0.0.1']);
    copyFileSync(join(out, 'b.key'), join(c.certDir, 'b.key'));
    copyFileSync(join(out, 'b.crt'), join(c.certDir, 'b.crt'));
    const want = new X509Certificate(readFileSync(join(c.certDir, 'b.crt'))).serialNumber.toUpperCase();
    expect(want).not.toBe(before);
    c.nodes.b.proc!.kill('SIGHUP');
    await until("b's PostgreSQL presents the renewed certificate", async () => (await pgSerial()) === want, 30_000);
    expect((await c.events('b', 'tls_reload_failed'))).toEqual([]);
    await until('a still streams from b', async () => (await c.status('a'))!.replication.db.streaming === true, 30_000);
  }, 120_000);
});
