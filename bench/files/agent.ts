/**
 * One side of the file-sync benchmark as its own process, like a real sidecar:
 *   agent.js receiver DST SECRET       -> prints "listening PORT"
 *   agent.js sender SRC URL SECRET [BATCH_MS MAX_BATCH_MS]
 *                                      -> prints "ready" once the first full pass is done (batching: 200 / 500 ms, the defaults)
 * Stops on SIGTERM.
 */
import type { AddressInfo } from 'node:net';
import express from 'express';
import { captureRawBody, requirePeerAuth } from '../../src/peer/auth.js';
import { PeerClient } from '../../src/peer/client.js';
import { FileSyncReceiver } from '../../src/replication/files/receiver.js';
import { filesPeerRouter } from '../../src/replication/files/router.js';
import { FileSyncSender } from '../../src/replication/files/sender.js';

const [role, dir, a, b, batchArg, maxBatchArg] = process.argv.slice(2);

async function main(): Promise<void> {
  if (role === 'receiver') {
    const receiver = new FileSyncReceiver({ trees: [{ name: 'bench', path: dir, exclude: [] }] });
    const app = express();
    app.use('/peer/files', express.json({ verify: captureRawBody, limit: '64mb' }), requirePeerAuth(a, { allowStream: true }), filesPeerRouter({ receiver }));
    const server = app.listen(0, '127.0.0.1', () => console.log(`listening ${(server.address() as AddressInfo).port}`));
    process.on('SIGTERM', () => server.close(() => process.exit(0)));
    return;
  }
  if (role === 'sender') {
    const client = new PeerClient('bench-primary', b);
    const sender = new FileSyncSender({
      config: { trees: [{ name: 'bench', path: dir, exclude: [] }], batchMs: Number(batchArg ?? 200), maxBatchMs: Number(maxBatchArg ?? 500), largeFileBytes: 1024 * 1024 },
      transport: client,
      peerUrl: a,
    });
    await sender.start();
    if (!(await sender.drain(60_000))) throw new Error(`first pass did not finish: ${sender.status().lastError}`);
    console.log('ready');
    process.on('SIGTERM', () => {
      void sender.stop().then(() => {
        client.close();
        process.exit(0);
      });
    });
    return;
  }
  throw new Error('usage: agent.js receiver DST SECRET | sender SRC URL SECRET');
}

main().catch((err) => {
  console.error(err instanceof Error ? err.message : String(err));
  process.exit(1);
});
