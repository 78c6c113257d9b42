/**
 * A PostgreSQL session lost in the middle of a query (the server killed, a backend gone) must fail that
 * one read, never the sidecar: pg emits the loss as an 'error' event on the client at once, before the
 * query's promise rejects, and a pooled client that is checked out has no listener of the pool's.
 * A minimal protocol peer plays the server: trust auth, then it drops the connection on the first query.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { PostgresNode } from '../../adapters/postgres/embedded.js';
import type { DbConfig } from '../../src/replication/db/config.js';
import { fakePostgres } from '../helpers/pg-wire.js';

let server: Awaited<ReturnType<typeof fakePostgres>> | null = null;
afterEach(async () => {
  await server?.close();
  server = null;
});

describe('PostgreSQL status reads over a lost session', () => {
  it('a session dropped mid-query fails the read (after one retry) and leaves no unheard error', async () => {
    server = await fakePostgres((sock) => sock.destroy());
    const { port, queries } = server;
    const cfg = {
      mode: 'external',
      connectionString: `postgres://postgres@127.0.0.1:${port}/postgres`,
      port,
      advertiseHost: '127.0.0.1',
      dataDir: '/nonexistent/pg',
      superuser: 'postgres',
      superuserPassword: 'x',
      replicationUser: 'replicator',
      replicationPassword: 'y',
    } as unknown as DbConfig;
    const node = new PostgresNode('a', cfg);
    const unheard: unknown[] = [];
    const onUncaught = (err: unknown) => unheard.push(err);
    process.prependListener('uncaughtException', onUncaught);
    try {
      await expect(node.replicas()).rejects.toThrow(/list standbys/);
      expect(queries()).toBe(2); // the read retries once on a fresh session
      await new Promise((r) => setTimeout(r, 100));
      expect(unheard).toEqual([]);
    } finally {
      process.removeListener('uncaughtException', onUncaught);
    }
  });
});
