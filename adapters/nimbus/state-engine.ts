/**
 * The NimbusStateEngine of a real head node: Derby through a frozen point-in-time copy and a boot check
 * (NimbusDerbyTool), sqlite through the sqlite3 shell's online backup.
 */
import { existsSync } from 'node:fs';
import { readFile, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { NimbusStateEngine } from '../../src/ports.js';
import { DerbyServer } from './derby-server.js';
import { DerbyTool } from './derby-tool.js';
import { FreezeBudgetExceeded, freezeCopy, newFreezeCopyState, type FreezeCopyState } from './freeze-copy.js';
import { SqliteTool } from './sqlite.js';

/** The PID in a PID file (first number in it), when that process exists. */
export async function pidFromFile(file: string): Promise<number | null> {
  const text = await readFile(file, 'utf8').catch(() => null);
  const pid = text === null ? NaN : Number(/\d+/.exec(text)?.[0]);
  if (!Number.isInteger(pid) || pid <= 1) return null;
  try {
    process.kill(pid, 0);
    return pid;
  } catch {
    return null;
  }
}

/** Directories under `root` (depth ≤ 3) that are Derby databases (they hold service.properties). */
export async function findDerbyDatabases(root: string, depth = 3): Promise<string[]> {
  if (existsSync(join(root, 'service.properties'))) return [root];
  if (depth === 0) return [];
  const out: string[] = [];
  for (const e of await readdir(root, { withFileTypes: true }).catch(() => [])) {
    if (e.isDirectory()) out.push(...(await findDerbyDatabases(join(root, e.name), depth - 1)));
  }
  return out.sort();
}

export class NimbusStateAdapter implements NimbusStateEngine {
  private readonly states = new Map<string, FreezeCopyState>();
  /** The long-lived JVM that boots and checks copies (started on first use). */
  private readonly verifier: DerbyServer;

  constructor(
    readonly derby: DerbyTool,
    readonly sqlite: SqliteTool,
    private readonly pid: (pidFile: string | undefined) => Promise<number | null> = async (f) => (f ? pidFromFile(f) : null),
  ) {
    this.verifier = new DerbyServer(derby);
  }

  async derbyCopy(o: { name: string; source: string; target: string; pidFile?: string; maxPauseMs: number }) {
    let state = this.states.get(o.name);
    if (!state) {
      // No records of what the target holds: start it afresh.
      await rm(o.target, { recursive: true, force: true });
      state = newFreezeCopyState();
      this.states.set(o.name, state);
    }
    // A frozen pass over budget is mostly a busy moment (the pass reads the changed files whole): try
    // once more at once instead of a whole interval later. Both freezes count as pauses.
    const abandonedPausesMs: number[] = [];
    for (let attempt = 0; ; attempt++) {
      try {
        const r = await freezeCopy({ source: o.source, target: o.target, state, pid: () => this.pid(o.pidFile), maxPauseMs: o.maxPauseMs });
        return { takenAt: r.takenAt, pauseMs: r.pauseMs, frozen: r.frozen, fresh: r.fresh, files: r.files, changed: r.changed, bytesPaused: r.bytesPaused, abandonedPausesMs };
      } catch (err) {
        if (!(err instanceof FreezeBudgetExceeded)) throw err;
        abandonedPausesMs.push(err.pauseMs);
        if (attempt >= 1) {
          (err as FreezeBudgetExceeded & { abandonedPausesMs?: number[] }).abandonedPausesMs = abandonedPausesMs;
          throw err;
        }
      }
    }
  }

  async derbyBoot(dir: string) {
    const dbs = await findDerbyDatabases(dir);
    if (!dbs.length) throw new Error(`no Derby database (service.properties) under ${dir}`);
    const r = await this.verifier.boot(dbs);
    if (!r.ok) throw new Error(r.error ?? 'boot failed');
    return { databases: dbs.length };
  }

  async derbyVerify(dir: string) {
    const dbs = await findDerbyDatabases(dir);
    if (!dbs.length) throw new Error(`no Derby database (service.properties) under ${dir}`);
    const r = await this.verifier.check(dbs);
    if (!r.ok) throw new Error(r.error ?? 'check failed');
    const rows: Record<string, number> = {};
    for (const d of r.databases ?? []) for (const [t, n] of Object.entries(d.rows)) rows[`${d.path.slice(dir.length + 1)}:${t}`] = n;
    return { databases: dbs.length, rows };
  }

  /** Stops the verifier JVM. */
  close(): Promise<void> {
    return this.verifier.close();
  }

  sqliteBackup(src: string, dst: string) {
    return this.sqlite.backup(src, dst);
  }
  sqliteCheck(db: string) {
    return this.sqlite.integrityCheck(db);
  }
  sqliteDataKeys(db: string) {
    return this.sqlite.dataKeys(db);
  }
  sqliteRebase(db: string, from: string, to: string) {
    return this.sqlite.rebase(db, from, to);
  }
}

/** The engine for a `nimbusState` config section (Derby jar, java, sqlite3 from the config). */
export function nimbusStateEngine(cfg: { derbyClasspath: string; java: string; javac: string; sqlite3: string }, cacheDir?: string): NimbusStateAdapter {
  return new NimbusStateAdapter(new DerbyTool({ classpath: cfg.derbyClasspath, java: cfg.java, javac: cfg.javac, cacheDir }), new SqliteTool({ sqlite3: cfg.sqlite3 }));
}
