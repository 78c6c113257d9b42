/**
 * The sender's watcher holds one handle per directory, not one per file: a tree of 2,000 files in 20
 * directories must not add 2,000 handles (soak: active handles 64 -> 222 and RSS +30-40 % over ten
 * minutes with the per-file watches). Change detection keeps working: edits, chmod, new files in new
 * directories and deletes all reach the (fake) standby.
 */
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { FileSyncSender } from '../../src/replication/files/sender.js';
import type { PeerTransport } from '../../src/ports.js';
import type { Batch } from '../../src/replication/files/protocol.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const handles = () => (process as unknown as { _getActiveHandles(): unknown[] })._getActiveHandles().length;

class FakeStandby implements PeerTransport {
  readonly ops: Array<{ op: string; path: string; mode?: number }> = [];
  async post<T>(_url: string, path: string, body: unknown): Promise<T> {
    if (path.endsWith('/manifest')) return { tree: 'etc', entries: [] } as T;
    const b = body as Batch;
    for (const e of b.entries) this.ops.push({ op: e.op, path: e.path, ...(e.op === 'file' || e.op === 'dir' ? { mode: e.mode } : {}) });
    return { applied: b.entries.length, quarantined: 0 } as T;
  }
  async getStream(): Promise<Readable> {
    throw new Error('not used');
  }
  async putStream<T>(_url: string, path: string, body: Readable): Promise<T> {
    body.resume();
    this.ops.push({ op: 'put', path: new URL(`http://x${path}`).searchParams.get('path') ?? '' });
    return { applied: 1, quarantined: 0 } as T;
  }
  saw(op: string, path: string, mode?: number): boolean {
    return this.ops.some((o) => o.op === op && o.path === path && (mode === undefined || o.mode === mode));
  }
}

async function until(what: string, fn: () => boolean, timeoutMs = 5000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!fn()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

let dir: string | null = null;
let sender: FileSyncSender | null = null;
afterEach(async () => {
  await sender?.stop();
  sender = null;
  if (dir) rmSync(dir, { recursive: true, force: true });
  dir = null;
});

describe('file sync sender: watch handles', () => {
  it('a tree of 2,000 files in 20 directories costs about one handle per directory, and changes are still seen', async () => {
    dir = mkdtempSync(join(tmpdir(), 'nha-watch-'));
    const root = join(dir, 'etc');
    for (let d = 0; d < 20; d++) {
      mkdirSync(join(root, `d${d}`), { recursive: true });
      for (let f = 0; f < 100; f++) writeFileSync(join(root, `d${d}`, `f${f}.conf`), `${d}/${f}\n`);
    }
    const standby = new FakeStandby();
    const before = handles();
    sender = new FileSyncSender({ config: { trees: [{ name: 'etc', path: root, exclude: ['*.swp'] }], batchMs: 50, maxBatchMs: 100, largeFileBytes: 1024 * 1024 }, transport: standby, peerUrl: 'http://standby' });
    await sender.start();
    await until('first full pass', () => sender!.status().passes > 0);
    const after = handles();
    console.log(`active handles: ${before} before the sender, ${after} watching 2,000 files in 20 directories (+${after - before})`);
    expect(after - before).toBeLessThan(40);

    // Edits, a chmod alone, a new directory with files, deletes, an excluded file.
    writeFileSync(join(root, 'd3', 'f7.conf'), 'edited\n');
    await until('edit shipped', () => standby.saw('file', 'd3/f7.conf'));
    chmodSync(join(root, 'd4', 'f1.conf'), 0o600);
    await until('chmod shipped', () => standby.saw('file', 'd4/f1.conf', 0o600));
    mkdirSync(join(root, 'new', 'deeper'), { recursive: true });
    writeFileSync(join(root, 'new', 'deeper', 'x.conf'), 'x\n');
    await until('file in a new directory shipped', () => standby.saw('file', 'new/deeper/x.conf'));
    writeFileSync(join(root, 'new', 'deeper', 'y.conf'), 'y\n');
    await until('second file in the new directory shipped', () => standby.saw('file', 'new/deeper/y.conf'));
    rmSync(join(root, 'd5', 'f2.conf'));
    await until('delete shipped', () => standby.saw('delete', 'd5/f2.conf'));
    writeFileSync(join(root, 'd6', 'edit.swp'), 'swap\n');
    writeFileSync(join(root, 'd6', 'after-swap.conf'), 'z\n');
    await until('file after the excluded one shipped', () => standby.saw('file', 'd6/after-swap.conf'));
    expect(standby.ops.some((o) => o.path.endsWith('.swp'))).toBe(false);
    // A removed directory releases its handles.
    rmSync(join(root, 'new'), { recursive: true });
    await until('directory delete shipped', () => standby.saw('delete', 'new'));
    await sleep(100);
    expect(handles() - before).toBeLessThan(40);
  }, 30_000);
});
