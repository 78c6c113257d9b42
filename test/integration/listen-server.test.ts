import { describe, expect, it } from 'vitest';
import { listenServer } from '../../src/api/server.js';

describe('listenServer', () => {
  it('hands a server error after the bind (accept failing) to onError and keeps listening', async () => {
    const seen: string[] = [];
    const l = await listenServer((_req, res) => res.end('ok'), { host: '127.0.0.1', port: 0 }, null, (err) => seen.push(err.message));
    try {
      // What Node emits when accept() fails (EMFILE, ENOMEM): without a listener it would stop the process.
      l.server.emit('error', Object.assign(new Error('accept EMFILE'), { code: 'EMFILE' }));
      expect(seen).toEqual(['accept EMFILE']);
      expect(await (await fetch(l.url)).text()).toBe('ok');
    } finally {
      await new Promise((r) => l.server.close(r));
    }
  });
  it('rejects on a bind error', async () => {
    const a = await listenServer((_req, res) => res.end(), { host: '127.0.0.1', port: 0 }, null);
    try {
      await expect(listenServer((_req, res) => res.end(), { host: '127.0.0.1', port: a.port }, null)).rejects.toThrow(/EADDRINUSE/);
    } finally {
      await new Promise((r) => a.server.close(r));
    }
  });
});
