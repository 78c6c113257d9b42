/**
 * `config check` warnings about a Nimbus head node's state: a plain file tree laid over live embedded
 * databases (a copy of live Derby or sqlite files is torn), and a `nimbus` service whose databases no
 * `nimbusState` item covers (a standby without them would promote with none of the VMs or users).
 */
import { closeSync, existsSync, openSync, readSync, readdirSync, statSync } from 'node:fs';
import { isAbsolute, join, relative } from 'node:path';
import type { ClusterConfig } from '../../config/schema.js';
import { makeExcluder } from '../files/paths.js';
import { resolveItems } from './data-path.js';

function isSqlite(file: string): boolean {
  let fd: number | null = null;
  try {
    fd = openSync(file, 'r');
    const b = Buffer.alloc(16);
    return readSync(fd, b, 0, 16, 0) === 16 && b.toString('latin1') === 'SQLite format 3\u0000';
  } catch {
    return false;
  } finally {
    if (fd !== null) closeSync(fd);
  }
}

/** Live-database paths under `root` (Derby directories, sqlite files), at most `limit` entries visited. */
export function findLiveDatabases(root: string, limit = 20_000): { path: string; kind: 'derby' | 'sqlite' }[] {
  const out: { path: string; kind: 'derby' | 'sqlite' }[] = [];
  let seen = 0;
  const visit = (dir: string, depth: number) => {
    if (depth > 8 || seen > limit) return;
    let names: string[];
    try {
      names = readdirSync(dir);
    } catch {
      return;
    }
    if (names.includes('service.properties') && names.includes('seg0')) {
      out.push({ path: dir, kind: 'derby' });
      return;
    }
    for (const n of names) {
      seen++;
      // The standby's own boot directory and a unit set aside mid-install (receiver.ts), not live state.
      if (n.endsWith('.nimbus-ha-new') || n.endsWith('.nimbus-ha-old')) continue;
      const p = join(dir, n);
      let st;
      try {
        st = statSync(p);
      } catch {
        continue;
      }
      if (st.isDirectory()) visit(p, depth + 1);
      else if (st.isFile() && /\.(db|sqlite3?)$/.test(n) && isSqlite(p)) out.push({ path: p, kind: 'sqlite' });
    }
  };
  visit(root, 0);
  return out;
}

export function nimbusStateWarnings(cfg: ClusterConfig): string[] {
  const w: string[] = [];
  const covered = cfg.nimbusState ? resolveItems(cfg.nimbusState).map((i) => i.path) : [];
  const isCovered = (p: string) => covered.some((c) => p === c || p.startsWith(`${c}/`));
  for (const tree of cfg.files?.trees ?? []) {
    const excluded = makeExcluder(tree.exclude);
    for (const db of findLiveDatabases(tree.path)) {
      const rel = relative(tree.path, db.path);
      if (excluded(rel)) continue;
      w.push(
        `files.trees[${tree.name}]: covers the live ${db.kind === 'derby' ? 'Derby database' : 'sqlite database'} ${db.path}; a file copy of it is torn ` +
          `(exclude "${rel}${db.kind === 'derby' ? '/**' : ''}" and protect it with a nimbusState.${db.kind} item)`,
      );
    }
  }
  const home = cfg.nimbusState?.home ?? cfg.nimbus?.home;
  if (home && isAbsolute(home) && existsSync(home)) {
    for (const db of [...findLiveDatabases(join(home, 'services', 'var')), ...findLiveDatabases(join(home, 'cumulus', 'etc'))]) {
      if (!isCovered(db.path)) w.push(`nimbusState: ${db.path} (${db.kind}) is durable head-node state that no nimbusState item covers: a standby would promote without it (add the item; \`nimbus-ha config from-nimbus ${home}\` prints them all)`);
    }
  }
  if (cfg.nimbusState && !cfg.nimbusState.derby.length && !cfg.nimbusState.sqlite.length) w.push('nimbusState: has no derby and no sqlite items: it protects nothing');
  return w;
}
