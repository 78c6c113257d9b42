/** Pure comparison of a primary's manifest entry with the standby's. */
import type { ManifestEntry } from './protocol.js';

/**
 * Whether the standby's entry must be replaced. Directory mtimes are ignored (they change whenever a
 * child does); file mtimes count when they differ by a millisecond or more.
 */
export function differs(local: ManifestEntry, remote: ManifestEntry | undefined): boolean {
  if (!remote || remote.type !== local.type) return true;
  if (local.type === 'file' && remote.type === 'file') {
    return local.sha256 !== remote.sha256 || local.mode !== remote.mode || Math.abs(local.mtimeMs - remote.mtimeMs) >= 1;
  }
  if (local.type === 'dir' && remote.type === 'dir') return local.mode !== remote.mode;
  if (local.type === 'link' && remote.type === 'link') return local.target !== remote.target;
  return true;
}
