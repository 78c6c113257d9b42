import { describe, expect, it } from 'vitest';
import { differs } from '../../src/replication/files/diff.js';
import type { ManifestEntry } from '../../src/replication/files/protocol.js';

const file = (o: Partial<Extract<ManifestEntry, { type: 'file' }>> = {}): ManifestEntry => ({
  type: 'file', path: 'a', size: 1, mtimeMs: 1000.25, sha256: 'x'.repeat(64), mode: 0o644, ...o,
});

describe('differs (primary entry vs standby entry)', () => {
  it.each<[string, ManifestEntry, ManifestEntry | undefined, boolean]>([
    ['missing on standby', file(), undefined, true],
    ['identical file', file(), file(), false],
    ['sub-millisecond mtime rounding', file(), file({ mtimeMs: 1000.9 }), false],
    ['mtime differs', file(), file({ mtimeMs: 2000 }), true],
    ['content differs', file(), file({ sha256: 'y'.repeat(64) }), true],
    ['mode differs', file(), file({ mode: 0o600 }), true],
    ['file vs dir', file(), { type: 'dir', path: 'a', mode: 0o755 }, true],
    ['same dir', { type: 'dir', path: 'a', mode: 0o755 }, { type: 'dir', path: 'a', mode: 0o755 }, false],
    ['dir mode', { type: 'dir', path: 'a', mode: 0o755 }, { type: 'dir', path: 'a', mode: 0o700 }, true],
    ['same link', { type: 'link', path: 'a', target: 'b' }, { type: 'link', path: 'a', target: 'b' }, false],
    ['link target', { type: 'link', path: 'a', target: 'b' }, { type: 'link', path: 'a', target: 'c' }, true],
    ['link vs file', { type: 'link', path: 'a', target: 'b' }, file(), true],
  ])('%s', (_n, local, remote, want) => {
    expect(differs(local, remote)).toBe(want);
  });
});
