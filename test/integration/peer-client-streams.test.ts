/**
 * A streamed push (WAL segment, state file) that fails must release its source: the file stream is
 * closed, not left paused with its descriptor open until the process runs out of them.
 */
import { createReadStream, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PeerClient } from '../../src/peer/client.js';

let dir = '';
let server: Server;
let port = 0;
const sockets = new Set<Socket>();
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'nha-peer-stream-'));
  writeFileSync(join(dir, 'seg'), Buffer.alloc(4 * 1024 * 1024, 1));
  // Reads the request head, then drops the connection: the push fails mid-body.
  server = createServer((s) => {
    sockets.add(s);
    s.on('error', () => undefined);
    s.once('data', () => s.destroy());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  port = (server.address() as { port: number }).port;
});
afterAll(async () => {
  for (const s of sockets) s.destroy();
  await new Promise((r) => server.close(r));
  await rm(dir, { recursive: true, force: true });
});

describe('PeerClient.putStream', () => {
  it('closes the source stream when the push fails (connection dropped, nothing listening)', async () => {
    const client = new PeerClient('a', 'k'.repeat(32));
    const streams = [];
    for (const url of [`http://127.0.0.1:${port}`, 'http://127.0.0.1:1']) {
      for (let i = 0; i < 5; i++) {
        const body = createReadStream(join(dir, 'seg'));
        streams.push(body);
        await expect(client.putStream(url, '/v1/db/archive/000000010000000000000001', body, 4 * 1024 * 1024, 2000)).rejects.toThrow();
      }
    }
    const deadline = Date.now() + 2000;
    while (streams.some((s) => !s.closed) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    expect(streams.filter((s) => !s.closed)).toHaveLength(0);
  });
});
