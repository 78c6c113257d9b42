import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ReceivedRecords } from '../../src/replication/files/quarantine.js';

const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

describe('ReceivedRecords.delete', () => {
  const seeded = () => {
    const r = new ReceivedRecords();
    for (const p of ['a/b/c', 'a/b/d', 'a/bc', 'a/x', 'z']) r.set('etc', p, `sha-${p}`);
    r.set('other', 'a/b/c', 'sha-other');
    return r;
  };
  const rows: Array<[string, string, string[]]> = [
    ['a recorded file goes alone', 'a/b/c', ['a/b/d', 'a/bc', 'a/x', 'z']],
    ['a directory takes everything below it, not a sibling with the same prefix', 'a/b', ['a/bc', 'a/x', 'z']],
    ['a top directory', 'a', ['z']],
    ['a path never recorded changes nothing', 'q/r', ['a/b/c', 'a/b/d', 'a/bc', 'a/x', 'z']],
  ];
  it.each(rows)('%s', (_name, rel, left) => {
    const r = seeded();
    r.delete('etc', rel);
    expect(['a/b/c', 'a/b/d', 'a/bc', 'a/x', 'z'].filter((p) => r.get('etc', p) !== undefined)).toEqual(left);
    expect(r.get('other', 'a/b/c')).toBe('sha-other');
  });

  it('deletes are saved and survive a reload; a directory delete after them takes the rest', async () => {
    const d = await mkdtemp(join(tmpdir(), 'nha-records-'));
    dirs.push(d);
    const file = join(d, 'received.json');
    const r = new ReceivedRecords(file);
    await r.load();
    for (let i = 0; i < 5000; i++) r.set('etc', `chaos/f-${i}.conf`, `sha${i}`);
    for (let i = 0; i < 5000; i += 2) r.delete('etc', `chaos/f-${i}.conf`);
    await r.save();
    const again = new ReceivedRecords(file);
    await again.load();
    expect(again.get('etc', 'chaos/f-0.conf')).toBeUndefined();
    expect(again.get('etc', 'chaos/f-1.conf')).toBe('sha1');
    again.delete('etc', 'chaos');
    expect(again.get('etc', 'chaos/f-1.conf')).toBeUndefined();
  });
});

describe('FileSyncReceiver.flush', () => {
  it('writes the records a pending (once a second) save holds, so a stop right after a change keeps it', async () => {
    const { FileSyncReceiver } = await import('../../src/replication/files/receiver.js');
    const d = await mkdtemp(join(tmpdir(), 'nha-rx-'));
    dirs.push(d);
    const { mkdir } = await import('node:fs/promises');
    await mkdir(join(d, 'etc'));
    const opts = { trees: [{ name: 'etc', path: join(d, 'etc'), exclude: [] }], quarantineDir: join(d, 'q') };
    const rx = new FileSyncReceiver(opts);
    await rx.agreed('etc', 'nimbus.conf', 'a'.repeat(64));
    // A new receiver on the same directory (a restart) before the timed save: nothing written yet.
    expect(await new FileSyncReceiver(opts).lastReceived('etc', 'nimbus.conf')).toBeUndefined();
    await rx.flush();
    expect(await new FileSyncReceiver(opts).lastReceived('etc', 'nimbus.conf')).toBe('a'.repeat(64));
    await rx.flush(); // nothing pending: a no-op
  });
});
