import { describe, expect, it } from 'vitest';
import { HaError } from '../../src/errors.js';
import { primaryNotReady } from '../../src/replication/db/data-path.js';

const http = (status: number) => new HaError('DB_FAILED', `http://127.0.0.1:1/peer/db/basebackup: HTTP ${status}`, { status });

describe('a follow that failed because the primary is not ready yet', () => {
  it.each([
    { name: '503 from the only path', err: http(503), quiet: true },
    { name: '503 on one path, the other unreachable (Promise.any over the paths)', err: new AggregateError([new HaError('PEER_UNREACHABLE', 'ECONNREFUSED'), http(503)]), quiet: true },
    { name: '500: a real failure', err: http(500), quiet: false },
    { name: 'every path unreachable', err: new AggregateError([new HaError('PEER_UNREACHABLE', 'a'), new HaError('PEER_UNREACHABLE', 'b')]), quiet: false },
    { name: 'a plain error', err: new Error('disk full'), quiet: false },
  ])('$name -> retried quietly: $quiet', ({ err, quiet }) => {
    expect(primaryNotReady(err)).toBe(quiet);
  });
});
