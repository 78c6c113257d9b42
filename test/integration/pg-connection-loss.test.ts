/**
 * A PostgreSQL session lost in the middle of a query (the server killed, a backend gone) must fail that
 * one read, never the sidecar: pg emits the loss as an 'error' event on the client at once, before the
 * query's promise rejects, and a pooled client that is checked out has no listener of the pool's.
 * A minimal protocol peer plays the server: trust auth, then it drops the connection on the first query.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { PostgresNode } from '../../adapters/postgres/embedded.js';
import type { DbConfig } from '../../src/replication/db/config.js';

function msg(type: string, body: Buffer): Buffer {
  const head = Buffer.alloc(5);
  head.write(type, 0, 'latin1');
  head.writeInt32BE(body.length + 4, 1);
  return Buffer.concat([head, body]);
}

let server: Server | null = null;
const sockets = new Set<Socket>();
afterEach(async () => {
  for (const s of sockets) s.destroy();
  await new Promise((r) => (server ? server.close(r) : r(undefined)));
  server = null;
});

function droppingServer(): Promise<{ port: number; queries: () => number }> {
  let queries = 0;
  server = createServer((s) => {
    sockets.add(s);
    s.on('error', () => undefined);
    let startup = true;
    s.on('data', (d) => {
      if (startup) {
        startup = false;
        s.write(Buffer.concat([msg('R', Buffer.from([0, 0, 0, 0])), msg('Z', Buffer.from('I'))]));
      } else if (d[0] === 0x51 /* Q */ || d[0] === 0x50 /* P: extended protocol */) {
        queries++;
        s.destroy();
      }
    });
  });
  return new Promise((resolve) => server!.listen(0, '127.0.0.1', () => resolve({ port: (server!.address() as { port: number }).port, queries: () => queries })));
}

describe('PostgreSQL status reads over a lost session', () => {
  it('a session dropped mid-query fails the read (after one retry) and leaves no unheard error', async () => {
    const { port, queries } = await droppingServer();
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
