/**
 * Data-deletion faults of `nimbus-ha chaos`: the primary's repository objects or config tree deleted (or
 * the tree emptied); the standby must keep them (the delete guard), and the fault restores them after.
 */
import { readFileSync, renameSync, rmSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { sleep, store } from './load-types.js';
import { originalKey } from '../../replication/repo/quarantine.js';
import { QUARANTINE_PREFIX } from '../../replication/repo/types.js';
import { other, type FaultFn } from './fault-common.js';

function guardEvents(evs: any[]): number {
  return evs.filter((e) => /guard/i.test(String(e.type)) || /GUARD/.test(String(e.message ?? '')) || /guard/i.test(JSON.stringify(e.details ?? {}))).length;
}

/** Deletes every uploaded object on the primary's repository; the standby must keep them. */
export const massDeleteRepo: FaultFn = async (x, p) => {
  const q = other(p);
  const local = store(`http://127.0.0.1:${x.c.nodes[p].cumulusPort}`);
  const peer = store(`http://127.0.0.1:${x.c.nodes[q].cumulusPort}`);
  const keys: string[] = [];
  for await (const o of local.list('VMS/chaos/')) keys.push(o.key);
  const at = Date.now();
  for (const k of keys) await local.delete(k).catch(() => undefined);
  await sleep(Math.max(3000, x.leaseMs * 4));
  let kept = 0;
  for (const k of keys) if (await peer.head(k).catch(() => null)) kept++;
  const guard = guardEvents(await x.c.events(p).catch(() => [])) + guardEvents(await x.c.events(q).catch(() => []));
  const violations: string[] = [];
  if (keys.length >= 10 && kept < keys.length * 0.9) violations.push(`mass delete of ${keys.length} objects on ${p}: only ${kept} kept on ${q} (the delete guard did not hold)`);
  // The operator restores the deleted objects from the standby: from its bucket, or from the copies its
  // puller moved into quarantine while the deletes it followed stayed within the delete guard.
  const aside = new Map<string, string>();
  try {
    for await (const o of peer.list(QUARANTINE_PREFIX)) {
      const k = originalKey(o.key);
      if (k) aside.set(k, o.key); // listed in order: the newest event's copy last
    }
  } catch {
    /* restored from the bucket only */
  }
  let restored = 0;
  let fromQuarantine = 0;
  for (const k of keys) {
    try {
      const from = (await peer.head(k)) ? k : aside.get(k);
      if (!from) continue;
      if (from !== k) fromQuarantine++;
      const chunks: Buffer[] = [];
      for await (const ch of await peer.get(from)) chunks.push(ch as Buffer);
      const body = Buffer.concat(chunks);
      await local.put(k, Readable.from([body]), body.length);
      restored++;
    } catch {
      /* counted below as not restored */
    }
  }
  local.close();
  peer.close();
  return { fault: `mass delete: ${keys.length} objects deleted on ${p}'s repository (then restored from ${q})`, violations, at, notes: { deleted: keys.length, kept_on_standby: kept, restored, restored_from_quarantine: fromQuarantine, guard_events: guard } };
};

/** Deletes (mass-delete) or empties (empty-source-tree) the primary's config tree; the standby must keep it. */
export const filesGone = (mode: 'mass-delete' | 'empty-tree'): FaultFn => async (x, p) => {
  const q = other(p);
  const src = x.c.nodes[p].etcDir;
  const dst = x.c.nodes[q].etcDir;
  const aside = `${src}.chaos-aside`;
  const before = countFiles(join(dst, 'chaos'));
  const at = Date.now();
  // The files leave the tree in one rename (to the sync, a mass delete), so the restore below brings back
  // exactly what was there, including a file written just before that had not reached the standby yet.
  const filesAside = `${src}.chaos-files-aside`;
  if (mode === 'mass-delete') {
    rmSync(filesAside, { recursive: true, force: true });
    renameSync(join(src, 'chaos'), filesAside);
  } else {
    rmSync(aside, { recursive: true, force: true });
    renameSync(src, aside);
    mkdirSync(src);
  }
  await sleep(Math.max(3000, x.leaseMs * 4));
  const kept = countFiles(join(dst, 'chaos'));
  const guard = guardEvents(await x.c.events(p).catch(() => [])) + guardEvents(await x.c.events(q).catch(() => []));
  const violations: string[] = [];
  if (before >= 5 && kept < before * 0.9) violations.push(`${mode} of ${p}'s config tree: ${q} kept ${kept} of ${before} files (the delete guard did not hold)`);
  if (mode === 'empty-tree') {
    // The old tree comes back, and what the load wrote into the empty one meanwhile (acknowledged there)
    // is carried into it: removing it would be the harness losing acknowledged files. Synchronous, so the
    // writer (same event loop) cannot write between the renames.
    const emptied = `${src}.chaos-emptied`;
    rmSync(emptied, { recursive: true, force: true });
    renameSync(src, emptied);
    renameSync(aside, src);
    restoreFiles(join(emptied, 'chaos'), join(src, 'chaos'));
    rmSync(emptied, { recursive: true, force: true });
  } else {
    restoreFiles(filesAside, join(src, 'chaos'));
    rmSync(filesAside, { recursive: true, force: true });
    restoreFiles(join(dst, 'chaos'), join(src, 'chaos'));
  }
  return { fault: `${mode === 'mass-delete' ? 'mass delete of the config tree' : 'config tree replaced by an empty directory'} on ${p} (then restored)`, violations, at, notes: { files_before: before, kept_on_standby: kept, guard_events: guard } };
};

function countFiles(dir: string): number {
  let n = 0;
  try {
    for (const e of readdirSync(dir, { withFileTypes: true })) n += e.isDirectory() ? countFiles(join(dir, e.name)) : 1;
  } catch {
    /* absent */
  }
  return n;
}

function restoreFiles(from: string, to: string): void {
  mkdirSync(to, { recursive: true });
  for (const name of (() => {
    try {
      return readdirSync(from);
    } catch {
      return [];
    }
  })()) {
    try {
      const body = readFileSync(join(from, name));
      // write only what is missing: a file the writer wrote meanwhile wins
      try {
        readFileSync(join(to, name));
      } catch {
        writeFileSync(join(to, name), body);
      }
    } catch {
      /* skip */
    }
  }
}
