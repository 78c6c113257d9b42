/**
 * The independent checker of `nimbus-ha chaos`: reads rows, objects and config files straight from each
 * node (PostgreSQL, Cumulus, the config tree on disk), never from the sidecars, and compares them with
 * what the load generators were told succeeded; and counts PostgreSQL PANIC lines in the node logs.
 */
import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import pg from 'pg';
import { DB_PASSWORD, type Cluster } from '../../../fixtures/cluster.js';
import type { DbWriter } from '../../../fixtures/db-writer.js';
import { other, type Node } from './faults.js';
import { listTree, store, type FileWriter, type Uploader } from './load.js';
import type { PathCount } from './report.js';

/**
 * PANIC lines in the node logs under `dir`. Asynchronous: this process's event loop carries the
 * cluster's heartbeat path proxies and witness links, and a synchronous read of large logs would stall
 * every path at once (a fault of its own).
 */
export async function countPanics(dir: string): Promise<number> {
  let n = 0;
  const walk = async (d: string, depth: number): Promise<void> => {
    let names: string[];
    try {
      names = await readdir(d);
    } catch {
      return;
    }
    for (const name of names) {
      const p = join(d, name);
      let st;
      try {
        st = await stat(p);
      } catch {
        continue;
      }
      if (st.isDirectory()) {
        if (depth < 8 && name !== 'cumulus' && name !== 'base' && name !== 'pg_wal' && name !== 'wal-archive') await walk(p, depth + 1);
      } else if (name.endsWith('.log') && st.size < 200 * 1024 * 1024) {
        n += ((await readFile(p, 'utf8').catch(() => '')).match(/PANIC:/g) ?? []).length;
      }
    }
  };
  await walk(dir, 0);
  return n;
}

/**
 * The data check for the run's stack `c` and its load generators (SQL writer `w`, image `uploader`,
 * config-file writer `files`): a function comparing their records with a primary and its standby.
 */
export function dataChecker(c: Cluster, w: DbWriter, uploader: Uploader, files: FileWriter) {
  const rowsDsn = (n: Node) => `postgres://postgres:${DB_PASSWORD}@127.0.0.1:${c.nodes[n].pgPort}/postgres`;
  const rowsOn = async (n: Node): Promise<Set<number> | null> => {
    const cl = new pg.Client({ connectionString: rowsDsn(n), connectionTimeoutMillis: 3000, query_timeout: 20_000 });
    cl.on('error', () => undefined); // the server may die under us: that is the point of the run
    try {
      await cl.connect();
      const r = await cl.query<{ id: string }>('select id::text from chaos_rows');
      return new Set(r.rows.map((x) => Number(x.id)));
    } catch {
      return null;
    } finally {
      await cl.end().catch(() => undefined);
    }
  };
  const objectsOn = async (n: Node, prefix: string): Promise<Map<string, string> | null> => {
    const s = store(`http://127.0.0.1:${c.nodes[n].cumulusPort}`);
    try {
      const out = new Map<string, string>();
      for await (const o of s.list(prefix)) out.set(o.key, o.etag);
      return out;
    } catch {
      return null;
    } finally {
      s.close();
    }
  };

  /** Compare the load generators' records with what primary `p` and standby hold. */
  const checkData = async (p: Node, ambiguousRows: number, ambiguousImages: number, ambiguousFiles: number) => {
    const s = other(p);
    // rows
    const acked = w.acked.slice();
    const onP = await rowsOn(p);
    const onS = await rowsOn(s);
    const sMissing = onS ? acked.filter((id) => !onS.has(id)).length : acked.length;
    const rows: PathCount = { acked: acked.length, lost: onP ? acked.filter((id) => !onP.has(id)).length : -1, ambiguous: ambiguousRows, standby_missing: sMissing };
    // images (ETag = MD5 of a single-part upload)
    const imgAcked = [...uploader.acked];
    const pObj = await objectsOn(p, 'VMS/chaos/');
    const quarantine = new Set<string>();
    for (const n of ['a', 'b'] as const) for (const v of (await objectsOn(n, 'nha-quarantine/'))?.values() ?? []) quarantine.add(v);
    const sObj = await objectsOn(s, 'VMS/chaos/');
    const imgSMissing = imgAcked.filter(([k, m]) => pObj?.get(k) === m && sObj?.get(k) !== m).length;
    let imgLost = 0;
    let imgQ = 0;
    for (const [k, m] of imgAcked) {
      if (pObj?.get(k) === m) continue;
      if (quarantine.has(m)) imgQ++;
      else imgLost++;
    }
    const images: PathCount = { acked: imgAcked.length, lost: pObj ? imgLost : -1, ambiguous: ambiguousImages, standby_missing: imgSMissing, quarantined: imgQ };
    // config files
    const fAcked = [...files.acked];
    const pTree = listTree(c.nodes[p].etcDir);
    const fq = new Set<string>();
    for (const n of ['a', 'b'] as const) for (const v of listTree(join(c.nodes[n].dataDir, 'quarantine')).values()) fq.add(v);
    const sTree = listTree(c.nodes[s].etcDir);
    const fSMissing = fAcked.filter(([k, m]) => pTree.get(k) === m && sTree.get(k) !== m).length;
    let fLost = 0;
    let fQ = 0;
    for (const [k, m] of fAcked) {
      if (pTree.get(k) === m) continue;
      if (fq.has(m)) fQ++;
      else fLost++;
    }
    const filesC: PathCount = { acked: fAcked.length, lost: fLost, ambiguous: ambiguousFiles, standby_missing: fSMissing, quarantined: fQ };
    const complete = onP !== null && pObj !== null && sMissing === 0 && imgSMissing === 0 && fSMissing === 0;
    return { rows, images, files: filesC, complete };
  };
  return checkData;
}
