/**
 * A minimal PostgreSQL protocol peer for tests of how clients survive a server that misbehaves at a
 * chosen moment: it accepts the startup message with trust authentication and answers "ready", then
 * hands every query message (simple or extended protocol) to `onQuery`. Binds port 0 on loopback.
 */
import { createServer, type Socket } from 'node:net';

/** One backend message: type byte, length, body. */
export function pgMessage(type: string, body: Buffer): Buffer {
  const head = Buffer.alloc(5);
  head.write(type, 0, 'latin1');
  head.writeInt32BE(body.length + 4, 1);
  return Buffer.concat([head, body]);
}

export const READY = pgMessage('Z', Buffer.from('I'));
/** What a backend sends when its postmaster is killed under it. */
export const FATAL_POSTMASTER_EXIT = pgMessage('E', Buffer.from('SFATAL\0VFATAL\0C57P01\0Mterminating connection due to unexpected postmaster exit\0\0', 'latin1'));

export async function fakePostgres(onQuery: (s: Socket) => void): Promise<{ port: number; queries: () => number; close: () => Promise<void> }> {
  let queries = 0;
  const sockets = new Set<Socket>();
  const server = createServer((s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => undefined);
    let startup = true;
    s.on('data', (d) => {
      if (startup) {
        startup = false;
        s.write(Buffer.concat([pgMessage('R', Buffer.from([0, 0, 0, 0])), READY]));
      } else if (d[0] === 0x51 /* Q */ || d[0] === 0x50 /* P: extended protocol */) {
        queries++;
        onQuery(s);
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    port: (server.address() as { port: number }).port,
    queries: () => queries,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
    },
  };
}
