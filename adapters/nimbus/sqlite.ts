/**
 * Cumulus's authz.db through the sqlite3 command-line shell (Debian `sqlite3`): snapshots through
 * sqlite's online backup API (`.backup`, a consistent copy while Cumulus keeps writing, never a raw
 * copy of the file), `PRAGMA integrity_check`, the objects' `data_key` paths, and the rewrite of their
 * prefix when the standby keeps posixdata under another root (what Nimbus's `cumulus-rebase` does).
 */
import { spawn } from 'node:child_process';

export interface SqliteToolOptions {
  /** The sqlite3 shell (default from PATH). */
  sqlite3?: string;
  /** How long a statement waits for Cumulus's write lock before failing. */
  busyTimeoutMs?: number;
}

const quoteSql = (s: string) => `'${s.replace(/'/g, "''")}'`;

export class SqliteTool {
  private readonly bin: string;
  private readonly busyMs: number;

  constructor(opts: SqliteToolOptions = {}) {
    this.bin = opts.sqlite3 ?? 'sqlite3';
    this.busyMs = opts.busyTimeoutMs ?? 10_000;
  }

  /** Runs the shell with commands (dot-commands or SQL) as arguments; resolves its stdout. */
  run(db: string, commands: string[], opts: { json?: boolean; input?: string } = {}): Promise<string> {
    return new Promise((resolve, reject) => {
      const args = ['-bail', '-batch', '-cmd', `.timeout ${this.busyMs}`, ...(opts.json ? ['-json'] : []), db, ...commands];
      const child = spawn(this.bin, args, { stdio: ['pipe', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      child.stderr.on('data', (d: Buffer) => (err += d.toString()));
      child.once('error', reject);
      // sqlite3 that exits before reading its input (a failed open) must not raise EPIPE on the sidecar.
      child.stdin.on('error', () => undefined);
      child.once('close', (code) => {
        if (code === 0 && !err.trim()) resolve(out);
        else reject(new Error(`sqlite3 ${db}: ${(err || out).trim().slice(0, 2000) || `exit ${code}`}`));
      });
      child.stdin.end(opts.input ?? '');
    });
  }

  /** A consistent copy through the online backup API; Cumulus is never paused. Returns the time it took. */
  async backup(src: string, dst: string): Promise<{ ms: number }> {
    const t0 = performance.now();
    await this.run(src, [`.backup ${quoteSql(dst)}`]);
    return { ms: performance.now() - t0 };
  }

  /** `PRAGMA integrity_check`; throws with sqlite's findings unless it answers "ok". */
  async integrityCheck(db: string): Promise<void> {
    const out = (await this.run(db, ['PRAGMA integrity_check;'])).trim();
    if (out !== 'ok') throw new Error(`integrity_check of ${db}: ${out.slice(0, 1000)}`);
  }

  /** Every object's data_key (absolute paths of files under posixdata). */
  async dataKeys(db: string): Promise<string[]> {
    const out = await this.run(db, ['SELECT data_key FROM objects;'], { json: true });
    if (!out.trim()) return [];
    return (JSON.parse(out) as { data_key: string | null }[]).map((r) => r.data_key).filter((k): k is string => typeof k === 'string');
  }

  /** Rewrites data_key prefixes `from` → `to` (paths outside `from` stay); returns how many rows changed. */
  async rebase(db: string, from: string, to: string): Promise<number> {
    const f = from.endsWith('/') ? from : `${from}/`;
    const t = to.endsWith('/') ? to : `${to}/`;
    const sql = `BEGIN; UPDATE objects SET data_key = ${quoteSql(t)} || substr(data_key, ${f.length + 1}) WHERE substr(data_key, 1, ${f.length}) = ${quoteSql(f)}; SELECT changes(); COMMIT;`;
    const out = await this.run(db, [sql]);
    return Number(out.trim().split('\n').pop() ?? '0');
  }
}
