import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { EventBus, readHistory } from '../../src/events/bus.js';

let dir: string | null = null;
afterEach(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
  dir = null;
});

describe('event history rotation', () => {
  it('rotates by size, keeps N files, and every kept event stays readable in order', async () => {
    dir = await mkdtemp(join(tmpdir(), 'nha-hist-'));
    const file = join(dir, 'events.jsonl');
    const bus = new EventBus('a', () => 1, { historyFile: file, historyMaxBytes: 2000, historyFiles: 3, ringSize: 50 });
    for (let i = 0; i < 200; i++) bus.emit({ type: 'tick', severity: 'info', message: `event ${i}`, details: { i } });
    await bus.flush();
    const names = (await readdir(dir)).sort();
    expect(names).toEqual(['events.jsonl', 'events.jsonl.1', 'events.jsonl.2', 'events.jsonl.3']);
    for (const n of names) expect((await stat(join(dir, n))).size).toBeLessThanOrEqual(2000);
    const events = await readHistory(file, { files: 3 });
    const seen = events.map((e) => (e.details as { i: number }).i);
    // The newest events, contiguous and in order, up to the last one written.
    expect(seen.at(-1)).toBe(199);
    expect(seen).toEqual(Array.from({ length: seen.length }, (_, k) => 200 - seen.length + k));
    expect(seen.length).toBeGreaterThan(20);
    expect(seen.length).toBeLessThan(200);

    // A restarted bus shows the rotated history in /events (recent()), then its own events.
    const again = new EventBus('a', () => 1, { historyFile: file, historyMaxBytes: 2000, historyFiles: 3, ringSize: 50 });
    await again.loadHistory();
    again.emit({ type: 'role_changed', severity: 'info', message: 'after restart' });
    const recent = again.recent({ limit: 10 });
    expect(recent.at(-1)?.message).toBe('after restart');
    expect(recent.at(-2)?.message).toBe('event 199');
    await again.flush();
  });

  it('without historyMaxBytes the file is never rotated', async () => {
    dir = await mkdtemp(join(tmpdir(), 'nha-hist-'));
    const file = join(dir, 'events.jsonl');
    const bus = new EventBus('a', () => 1, { historyFile: file });
    for (let i = 0; i < 50; i++) bus.emit({ type: 'tick', severity: 'info', message: `event ${i}` });
    await bus.flush();
    expect(await readdir(dir)).toEqual(['events.jsonl']);
    expect((await readHistory(file)).length).toBe(50);
  });

  it('maxBytes reads only the tail of the newest files, whole events only, in order', async () => {
    dir = await mkdtemp(join(tmpdir(), 'nha-hist-'));
    const file = join(dir, 'events.jsonl');
    const bus = new EventBus('a', () => 1, { historyFile: file, historyMaxBytes: 20_000, historyFiles: 3 });
    for (let i = 0; i < 400; i++) bus.emit({ type: 'tick', severity: 'info', message: `event ${i}`, details: { i } });
    await bus.flush();
    const all = await readHistory(file, { files: 3 });
    const lineBytes = Buffer.byteLength(JSON.stringify(all[0])) + 1;
    for (const maxBytes of [1, lineBytes * 10 + 5, 30_000, 10_000_000]) {
      const got = (await readHistory(file, { files: 3, maxBytes })).map((e) => (e.details as { i: number }).i);
      // Contiguous, ending with the newest event; never more than the budget holds.
      if (got.length) expect(got.at(-1)).toBe(399);
      expect(got).toEqual(Array.from({ length: got.length }, (_, k) => 400 - got.length + k));
      expect(got.length * (lineBytes - 2)).toBeLessThanOrEqual(maxBytes);
      if (maxBytes >= 30_000) expect(got.length).toBeGreaterThan(60);
    }
    expect((await readHistory(file, { files: 3, maxBytes: 10_000_000 })).length).toBe(all.length);
  });
});
