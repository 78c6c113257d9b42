/**
 * Security finding 8 (issue 23): a peer that holds the data-path key must still not be able to plant a
 * link leading out of a tree, or a setuid/setgid/sticky file, on the standby. Real receiver behind the
 * real HMAC middleware on loopback, real files; each case checks the file system afterwards.
 */
import { lstat, mkdir, mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import express from 'express';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { HaError } from '../../src/errors.js';
import { captureRawBody, requirePeerAuth, sha256Hex } from '../../src/peer/auth.js';
import { PeerClient } from '../../src/peer/client.js';
import { FileSyncReceiver } from '../../src/replication/files/receiver.js';
import { filesPeerRouter } from '../../src/replication/files/router.js';
import type { EventInput } from '../../src/events/bus.js';

const SECRET = 'files-security-secret-0123456789';

describe('file sync: links and mode bits', () => {
  let base: string;
  let root: string;
  let server: Server;
  let url: string;
  let client: PeerClient;
  const events: EventInput[] = [];

  beforeAll(async () => {
    base = await mkdtemp(join(tmpdir(), 'nha-sec-files-'));
    // Deep enough that a handful of `..` from the tree reach the file system root.
    root = join(base, 'standby', 'etc');
    const receiver = new FileSyncReceiver({ trees: [{ name: 'etc', path: root, exclude: [] }], quarantineDir: join(base, 'quarantine'), events: { emit: (e) => events.push(e) } });
    const app = express();
    app.use('/peer/files', express.json({ verify: captureRawBody, limit: '64mb' }), requirePeerAuth(SECRET, { allowStream: true }), filesPeerRouter({ receiver }));
    server = await new Promise<Server>((resolve) => {
      const s = app.listen(0, '127.0.0.1', () => resolve(s));
    });
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    client = new PeerClient('primary', SECRET);
  });

  afterAll(async () => {
    client?.close();
    await new Promise((r) => server?.close(r));
    await rm(base, { recursive: true, force: true });
  });

  beforeEach(async () => {
    await rm(root, { recursive: true, force: true });
    await mkdir(join(root, 'd'), { recursive: true });
    await writeFile(join(root, 'keep.conf'), 'keep\n');
    events.length = 0;
  });

  const batch = (entries: unknown[]) =>
    client.post<{ applied: number }>(url, '/peer/files/batch', { tree: 'etc', entries }, 5000).then(
      () => null,
      (e: unknown) => e,
    );
  const exists = (p: string) => lstat(p).then(() => true, () => false);
  /** `..` segments from the tree root to `/`, plus a few more. */
  const toFsRoot = () => '../'.repeat(root.split('/').length + 2);

  it('refuses a link written through a chained link (d/up -> .., then d/up/esc) in one batch', async () => {
    const err = await batch([
      { op: 'link', path: 'd/up', target: '..' },
      // Lexically d/up/esc lies inside the tree and its target stays inside; physically the link
      // would be <tree>/esc and its target two levels above the tree.
      { op: 'link', path: 'd/up/esc', target: '../../etc/passwd' },
    ]);
    expect(err).toBeInstanceOf(HaError);
    expect((err as HaError).code).toBe('FILES_PATH_OUTSIDE_TREE');
    expect(await exists(join(root, 'esc'))).toBe(false);
    expect(events.map((e) => e.type)).toContain('files_path_refused');
  });

  it('refuses the same chain sent in two batches', async () => {
    expect(await batch([{ op: 'link', path: 'd/up', target: '..' }])).toBeNull();
    const err = await batch([{ op: 'link', path: 'd/up/esc', target: '../../etc/passwd' }]);
    expect((err as HaError).code).toBe('FILES_PATH_OUTSIDE_TREE');
    expect(await exists(join(root, 'esc'))).toBe(false);
    // Nor can a file or a delete go through the link.
    expect(((await batch([{ op: 'file', path: 'd/up/x.conf', mode: 0o644, mtimeMs: 1_600_000_000_000, sha256: sha256Hex('x'), data: Buffer.from('x').toString('base64') }])) as HaError).code).toBe(
      'FILES_PATH_OUTSIDE_TREE',
    );
    expect(await exists(join(root, 'x.conf'))).toBe(false);
    expect(((await batch([{ op: 'delete', path: 'd/up/keep.conf' }])) as HaError).code).toBe('FILES_PATH_OUTSIDE_TREE');
    expect(await exists(join(root, 'keep.conf'))).toBe(true);
  });

  it('refuses a link whose target leaves the tree through another link', async () => {
    expect(await batch([{ op: 'link', path: 'd/up', target: '..' }])).toBeNull();
    // d/up/.. is lexically d, physically the tree's parent.
    const err = await batch([{ op: 'link', path: 'esc', target: `d/up/../${toFsRoot().slice(3)}etc/passwd` }]);
    expect(err).not.toBeNull();
    expect(await exists(join(root, 'esc'))).toBe(false);
    const err2 = await batch([{ op: 'link', path: 'esc2', target: 'd/up/../keep.conf' }]);
    expect((err2 as HaError).code).toBe('FILES_PATH_OUTSIDE_TREE');
    expect(await exists(join(root, 'esc2'))).toBe(false);
  });

  it('removes an earlier link that a later link makes leave the tree', async () => {
    // `l` is inside the tree while `b` does not exist; `b -> .` (the tree root) makes b/.. the tree's parent.
    expect(await batch([{ op: 'link', path: 'l', target: 'b/../keep.conf' }])).toBeNull();
    expect(await exists(join(root, 'l'))).toBe(true);
    await batch([{ op: 'link', path: 'b', target: '.' }]);
    expect(await exists(join(root, 'l'))).toBe(false);
    expect(events.map((e) => e.type)).toContain('files_path_refused');
  });

  it('keeps links that stay inside the tree (control case)', async () => {
    expect(await batch([{ op: 'link', path: 'd/cur', target: '../keep.conf' }, { op: 'link', path: 'top', target: 'd/cur' }])).toBeNull();
    expect((await lstat(join(root, 'top'))).isSymbolicLink()).toBe(true);
    expect((await stat(join(root, 'top'))).isFile()).toBe(true);
  });

  it('strips setuid, setgid and sticky bits from files and directories', async () => {
    const data = Buffer.from('#!/bin/sh\n');
    expect(
      await batch([
        { op: 'dir', path: 'tmpdir', mode: 0o1777 },
        { op: 'file', path: 'tmpdir/suid', mode: 0o6755, mtimeMs: 1_600_000_000_000, sha256: sha256Hex(data), data: data.toString('base64') },
      ]),
    ).toBeNull();
    expect((await stat(join(root, 'tmpdir', 'suid'))).mode & 0o7777).toBe(0o755);
    expect((await stat(join(root, 'tmpdir'))).mode & 0o7777).toBe(0o777);
    // The standby's manifest reports what it has, so the primary's next pass does not resend it forever.
    const m = await client.post<{ entries: Array<{ path: string; mode?: number }> }>(url, '/peer/files/manifest', { tree: 'etc' }, 5000);
    expect(m.entries.find((e) => e.path === 'tmpdir/suid')?.mode).toBe(0o755);
    expect((await readdir(join(root, 'tmpdir'))).filter((n) => n.startsWith('.nha-tmp-'))).toEqual([]);
  });
});
