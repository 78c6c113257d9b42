/**
 * What a rejoin offers the primary (merge-back.ts): the files this node wrote while it was primary,
 * found in its trees and in the quarantine folders made since it became primary.
 */
import type { Stats } from 'node:fs';
import { lstat, readdir } from 'node:fs/promises';
import { join, posix } from 'node:path';
import type { FilesTreeConfig } from './config.js';
import { isTempName, makeExcluder } from './paths.js';
import { isMissing, sha256File } from './scan.js';
import { PREVIOUS_DIR, quarantineIdTime } from './quarantine.js';

export interface Candidate {
  tree: string;
  rel: string;
  abs: string;
  from: 'tree' | 'quarantine';
  mtimeMs: number;
  /** When its content was written on this node: the later of mtime and ctime in the tree; the mtime in quarantine (a move sets the ctime). */
  writtenMs: number;
  mode: number;
  size: number;
}

/** Where candidates are looked for (FilesMergeBackOptions satisfies this). */
export interface CandidateSource {
  trees: readonly FilesTreeConfig[];
  quarantineDir: string;
  /** What this node last received for a path (the receiver's record): such content came from the primary. */
  lastReceived: (tree: string, rel: string) => Promise<string | undefined>;
}

/** Files this node wrote since `since`: in its trees (not as received from the primary), and in quarantine folders made since. */
export async function findCandidates(o: CandidateSource, since: number): Promise<Candidate[]> {
  const out: Candidate[] = [];
  const seen = new Set<string>();
  for (const cfg of o.trees) {
    const root = posix.resolve(cfg.path);
    const excluded = makeExcluder(cfg.exclude);
    for (const f of await walkFiles(root, excluded)) {
      if (f.st.ctimeMs < since && f.st.mtimeMs < since) continue;
      const received = await o.lastReceived(cfg.name, f.rel);
      if (received !== undefined) {
        const sha = await sha256File(f.abs).catch(() => null);
        if (sha === null || sha === received) continue;
      }
      seen.add(`${cfg.name}/${f.rel}`);
      out.push({ tree: cfg.name, rel: f.rel, abs: f.abs, from: 'tree', mtimeMs: f.st.mtimeMs, writtenMs: Math.max(f.st.mtimeMs, f.st.ctimeMs), mode: f.st.mode & 0o777, size: f.st.size });
    }
  }
  // Quarantine folders made since the marker (second resolution in their names), newest first: the
  // newest copy of a path is the one offered.
  const sinceSec = Math.floor(since / 1000) * 1000;
  const ids = (await readdir(o.quarantineDir).catch(() => [] as string[]))
    .filter((n) => n !== PREVIOUS_DIR && (quarantineIdTime(n) ?? -1) >= sinceSec)
    .sort()
    .reverse();
  for (const id of ids) {
    for (const cfg of o.trees) {
      const excluded = makeExcluder(cfg.exclude);
      for (const f of await walkFiles(join(o.quarantineDir, id, cfg.name), excluded)) {
        if (f.st.mtimeMs < since) continue;
        const key = `${cfg.name}/${f.rel}`;
        if (seen.has(key)) continue;
        seen.add(key);
        out.push({ tree: cfg.name, rel: f.rel, abs: f.abs, from: 'quarantine', mtimeMs: f.st.mtimeMs, writtenMs: f.st.mtimeMs, mode: f.st.mode & 0o777, size: f.st.size });
      }
    }
  }
  return out;
}

/** Regular files below `root` (links not followed, temp files and excluded paths left out). */
async function walkFiles(root: string, excluded: (rel: string) => boolean): Promise<Array<{ rel: string; abs: string; st: Stats }>> {
  const out: Array<{ rel: string; abs: string; st: Stats }> = [];
  const walk = async (rel: string): Promise<void> => {
    let names: string[];
    try {
      names = await readdir(rel ? posix.join(root, rel) : root);
    } catch (err) {
      if (isMissing(err)) return;
      throw err;
    }
    for (const name of names) {
      const r = rel ? `${rel}/${name}` : name;
      if (isTempName(r) || excluded(r)) continue;
      const abs = posix.join(root, r);
      const st = await lstat(abs).catch(() => null);
      if (!st) continue;
      if (st.isDirectory()) await walk(r);
      else if (st.isFile()) out.push({ rel: r, abs, st });
    }
  };
  await walk('');
  return out;
}
