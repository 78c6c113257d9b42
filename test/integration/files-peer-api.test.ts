/**
 * The receiver's peer API under attack and misuse: real express server on loopback with the real HMAC
 * middleware, real files. Every refusal asserts that nothing was written (inside or outside the tree).
 */
import { mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import type { Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import express from 'express';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { HaError } from '../../src/errors.js';
import { captureRawBody, requirePeerAuth, sha256Hex, signRequest, STREAM_BODY } from '../../src/peer/auth.js';
import { PeerClient } from '../../src/peer/client.js';
import { FileSyncReceiver } from '../../src/replication/files/receiver.js';
import { filesPeerRouter } from '../../src/replication/files/router.js';
import type { EventInput } from '../../src/events/bus.js';

const SECRET = 'files-test-secret';

async function listAll(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string, rel: string) => {
    for (const e of await readdir(d, { withFileTypes: true })) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      out.push(r);
      if (e.isDirectory()) await walk(join(d, e.name), r);
    }
  };
  await walk(dir, '');
  return out.sort();
}

describe('files peer API', () => {
  let base: string;
  let root: string;
  let outside: string;
  let server: Server;
  let url: string;
  let client: PeerClient;
  const events: EventInput[] = [];
  let accepting = true;

  beforeAll(async () => {
    base = await mkdtemp(join(tmpdir(), 'nha-files-api-'));
    root = join(base, 'standby', 'etc');
    outside = join(base, 'outside');
    const receiver = new FileSyncReceiver({
      trees: [{ name: 'etc', path: root, exclude: [] }],
      accepting: () => accepting,
      quarantineDir: join(base, 'quarantine'),
      events: { emit: (e) => events.push(e) },
    });
    const app = express();
    app.use('/peer/files', express.json({ verify: captureRawBody, limit: '64mb' }), requirePeerAuth(SECRET, { allowStream: true }), filesPeerRouter({ receiver }));
    server = await new Promise<Server>((resolve) => {
      const s = app.listen(0, '127.0.0.1', () => resolve(s));
    });
    const addr = server.address();
    url = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`;
    client = new PeerClient('primary', SECRET);
  });

  afterAll(async () => {
    client?.close();
    await new Promise((r) => server?.close(r));
    await rm(base, { recursive: true, force: true });
  });

  beforeEach(async () => {
    await rm(root, { recursive: true, force: true });
    await rm(outside, { recursive: true, force: true });
    await mkdir(root, { recursive: true });
    await mkdir(outside, { recursive: true });
    await writeFile(join(root, 'keep.conf'), 'keep\n');
    events.length = 0;
  });

  const fileEntry = (path: string, content: string) => ({
    op: 'file' as const,
    path,
    mode: 0o644,
    mtimeMs: 1_600_000_000_000,
    sha256: sha256Hex(content),
    data: Buffer.from(content).toString('base64'),
  });

  async function refused(body: unknown): Promise<HaError> {
    const err = await client.post(url, '/peer/files/batch', body, 5000).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(HaError);
    return err as HaError;
  }

  async function assertNothingWritten(): Promise<void> {
    expect(await listAll(root)).toEqual(['keep.conf']);
    expect(await readFile(join(root, 'keep.conf'), 'utf8')).toBe('keep\n');
    expect(await listAll(outside)).toEqual([]);
    expect(await listAll(join(base, 'standby'))).toEqual(['etc', 'etc/keep.conf']);
  }

  it('applies a valid batch (control case for the refusals below)', async () => {
    const res = await client.post<{ applied: number }>(url, '/peer/files/batch', { tree: 'etc', entries: [fileEntry('new/a.conf', 'A')] }, 5000);
    expect(res.applied).toBe(1);
    expect(await readFile(join(root, 'new/a.conf'), 'utf8')).toBe('A');
  });

  it.each([
    ['parent traversal', '../../etc/x'],
    ['traversal to a sibling dir', '../../outside/x'],
    ['absolute path', `${'/'}tmp/nha-abs-${process.pid}`],
    ['absolute path into the outside dir', 'OUTSIDE'],
    ['dot-dot after a real dir', 'new/../../x'],
    ['NUL byte', 'a\0b'],
  ])('refuses %s with 400 FILES_PATH_OUTSIDE_TREE and writes nothing, even for the valid entry beside it', async (_name, p) => {
    const path = p === 'OUTSIDE' ? join(outside, 'x') : p;
    const err = await refused({ tree: 'etc', entries: [fileEntry('valid.conf', 'V'), fileEntry(path, 'EVIL')] });
    expect(err.code).toBe('FILES_PATH_OUTSIDE_TREE');
    expect(err.details?.status).toBe(400);
    await assertNothingWritten();
    await expect(readFile(`/tmp/nha-abs-${process.pid}`)).rejects.toThrow();
    expect(events.map((e) => e.type)).toContain('files_path_refused');
  });

  it('refuses a symlink whose target escapes the tree', async () => {
    const err = await refused({ tree: 'etc', entries: [{ op: 'link', path: 'esc', target: '../../outside' }] });
    expect(err.code).toBe('FILES_PATH_OUTSIDE_TREE');
    const abs = await refused({ tree: 'etc', entries: [{ op: 'link', path: 'esc', target: outside }] });
    expect(abs.code).toBe('FILES_PATH_OUTSIDE_TREE');
    await assertNothingWritten();
  });

  it('refuses to write through a local symlink that leads outside the tree', async () => {
    await symlink(outside, join(root, 'local-link'));
    const err = await refused({ tree: 'etc', entries: [fileEntry('local-link/x', 'EVIL')] });
    expect(err.code).toBe('FILES_PATH_OUTSIDE_TREE');
    expect(await listAll(outside)).toEqual([]);
    expect((await listAll(root)).sort()).toEqual(['keep.conf', 'local-link']);
  });

  it('refuses a streamed file outside the tree and keeps nothing of it', async () => {
    const data = Buffer.from('EVIL');
    const q = `tree=etc&path=${encodeURIComponent('../../outside/x')}&sha256=${sha256Hex(data)}&mode=420&mtime=1`;
    await expect(client.putStream(url, `/peer/files/file?${q}`, Readable.from([data]), data.length, 5000)).rejects.toThrow(/HTTP 400/);
    await assertNothingWritten();
  });

  it('refuses a streamed file whose content does not match its checksum', async () => {
    const data = Buffer.from('real content');
    const q = `tree=etc&path=big.bin&sha256=${sha256Hex('other')}&mode=420&mtime=1`;
    await expect(client.putStream(url, `/peer/files/file?${q}`, Readable.from([data]), data.length, 5000)).rejects.toThrow(/HTTP 400/);
    await assertNothingWritten();
  });

  it('refuses an inline file whose content does not match its checksum', async () => {
    const err = await refused({ tree: 'etc', entries: [{ ...fileEntry('x.conf', 'a'), sha256: sha256Hex('b') }] });
    expect(err.code).toBe('FILES_FAILED');
    await assertNothingWritten();
  });

  it('refuses changes with 409 while this node is not a standby', async () => {
    accepting = false;
    try {
      const err = await refused({ tree: 'etc', entries: [fileEntry('x.conf', 'from a stale primary')] });
      expect(err.details?.status).toBe(409);
    } finally {
      accepting = true;
    }
    await assertNothingWritten();
  });

  it('refuses unknown trees with 404', async () => {
    const err = await refused({ tree: 'nope', entries: [fileEntry('x.conf', 'a')] });
    expect(err.details?.status).toBe(404);
    await assertNothingWritten();
  });

  it('answers 401 to a request without a valid signature and writes nothing', async () => {
    const body = JSON.stringify({ tree: 'etc', entries: [fileEntry('x.conf', 'unsigned')] });
    const res = await fetch(`${url}/peer/files/batch`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    expect(res.status).toBe(401);
    const wrong = new PeerClient('primary', 'wrong-secret');
    try {
      await expect(wrong.post(url, '/peer/files/batch', JSON.parse(body), 5000)).rejects.toMatchObject({ code: 'PEER_AUTH_FAILED' });
    } finally {
      wrong.close();
    }
    await assertNothingWritten();
  });

  it('refuses a streamed (unhashed) body on the batch route', async () => {
    const body = JSON.stringify({ tree: 'etc', entries: [fileEntry('x.conf', 'stream')] });
    const headers = { 'content-type': 'application/json', ...signRequest(SECRET, 'primary', 'POST', '/peer/files/batch', STREAM_BODY) };
    const res = await fetch(`${url}/peer/files/batch`, { method: 'POST', headers, body });
    expect(res.status).toBe(401);
    expect(((await res.json()) as { message: string }).message).toMatch(/streamed bodies/);
    await assertNothingWritten();
  });
});
