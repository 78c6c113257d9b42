/**
 * What the file-sync sender (sender.ts) ships of one tree: in a full pass, the difference between this
 * node's tree and the standby's manifest; and the delete guard applied to a pass or to an event-driven
 * change set (the deletes it refuses are dropped and held: the standby keeps those paths).
 */
import type { ManifestEntry } from './protocol.js';
import type { DeleteVerdict } from './delete-guard.js';
import type { SenderDeleteGuard } from './sender-guard.js';
import type { SenderTree } from './sender-types.js';
import type { LocalItem } from './ship.js';
import type { PortableLinks } from './sender-links.js';
import { isTempName } from './paths.js';
import { differs } from './diff.js';
import { hasEntries, rootIdOf, scanTree, type HashCache } from './scan.js';
import { CopyPicture } from './copy-picture.js';

/**
 * This node's side of a full pass: every entry of the tree, links made portable (those leading outside
 * left out); `localCount` counts what is not a directory (the guard's empty-source rule).
 */
export async function localManifest(t: SenderTree, cache: HashCache, links: PortableLinks): Promise<{ local: Map<string, ManifestEntry>; localCount: number }> {
  const local = new Map<string, ManifestEntry>();
  let localCount = 0;
  for (const e of await scanTree(t.root, t.excluded, cache)) {
    if (e.type !== 'dir') localCount++;
    const fixed = links.portable(t, e);
    if (fixed) local.set(e.path, fixed);
  }
  return { local, localCount };
}

/**
 * What the standby must change: its entries this node lacks are deletes, local entries that differ from
 * its copy are sent. `t.copy` becomes the picture of the standby's copy (temp and excluded paths left out).
 */
export function diffWithStandby(t: SenderTree, local: Map<string, ManifestEntry>, remote: readonly ManifestEntry[]): LocalItem[] {
  const items: LocalItem[] = [];
  const remoteMap = new Map<string, ManifestEntry>();
  t.copy = new CopyPicture();
  for (const r of remote) {
    if (isTempName(r.path) || t.excluded(r.path)) continue;
    remoteMap.set(r.path, r);
    t.copy.set(r.path, r.type);
    if (!local.has(r.path)) items.push({ rel: r.path, entry: null });
  }
  for (const [rel, e] of local) if (differs(e, remoteMap.get(rel))) items.push({ rel, entry: e });
  return items;
}

/**
 * The delete guard on a full pass's difference (`sourceEmpty`: the tree has nothing but directories):
 * drops the deletes it refuses (they are held); a pass it lets through ends the tree's last refusal.
 */
export function guardPass(guard: SenderDeleteGuard, t: SenderTree, items: LocalItem[], sourceEmpty: boolean): LocalItem[] {
  const deletes = items.filter((i) => !i.entry).map((i) => i.rel);
  const n = guard.removes(t, deletes);
  const v = n > 0 ? guard.verdict(t, sourceEmpty, n) : ({ ok: true } as const);
  if (!v.ok) {
    const keep = guard.refuse(t, deletes, n, v);
    items = items.filter((i) => i.entry || keep.has(i.rel));
  } else t.guardKey = null;
  return items;
}

/**
 * The delete guard on an event-driven change set: drops the deletes it refuses (they are held).
 * `checkRoots` asks the watchers to check the roots again (one looked replaced or gone).
 */
export async function guardFlush(guard: SenderDeleteGuard, t: SenderTree, items: LocalItem[], checkRoots: () => void): Promise<LocalItem[]> {
  const deletes = items.filter((i) => !i.entry);
  if (deletes.length === 0) return items;
  const n = guard.removes(t, deletes.map((i) => i.rel));
  if (n === 0) return items;
  let verdict: DeleteVerdict;
  // A root that is not the directory we watch (replaced, re-mounted, gone) makes every path look deleted.
  const id = await rootIdOf(t.root);
  if (id === null || id !== t.rootId) {
    checkRoots();
    verdict = { ok: false, rule: 'empty-source', allowed: 0, message: `the root ${t.root} is ${id === null ? 'missing' : 'not the directory being watched (replaced or re-mounted)'}: ${n} delete(s) are held until it has been compared with the standby's copy` };
  } else {
    verdict = guard.verdict(t, !(await hasEntries(t.root, t.excluded)), n);
  }
  if (verdict.ok) return items;
  const keep = guard.refuse(t, deletes.map((i) => i.rel), n, verdict);
  return items.filter((i) => i.entry || keep.has(i.rel));
}
