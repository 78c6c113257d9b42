/**
 * RepoChangeWatch: counts file-system events under the source repository's backing directory (Cumulus
 * posixdata, or s3rver's data directory) so the standby can skip a listing pass when nothing changed.
 *
 * One fs.watch (inotify) per directory, files are not tracked. Deliberately not chokidar, although the
 * file sync uses it: chokidar drops a second 'change' of a path within 50 ms and changes that keep the
 * mtime, reads a new directory before it watches it (a file created in between is never reported),
 * and holds one inotify watch plus a stat per file. Here every raw event bumps the generation, a new
 * directory is watched before it is read, and the generation is bumped once more after its watch is in
 * place: whatever happened before that last bump is visible to a listing that starts after it.
 *
 * Memory: one watcher per directory (at most maxDirs, else the watch fails and reports an error).
 * Failures (ENOSPC from the inotify watch limit, a watcher error, the root vanishing, too many
 * directories) mark the hint not ok, bump the generation and retry with back-off; consumers then list.
 * What cannot be seen: a kernel inotify queue overflow (libuv drops IN_Q_OVERFLOW silently), changes
 * through another host (NFS) and symlinked subtrees (not followed). The standby's full pass at least
 * every fullPassMaxAgeMs bounds any such miss.
 */
import { watch, type FSWatcher } from 'node:fs';
import { lstat, readdir } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { basename, join, resolve } from 'node:path';
import { errorMessage } from '../../errors.js';
import type { RepoChangeHint } from './hint.js';

export interface RepoChangeWatchOptions {
  /** Most directories watched; above it the watcher reports an error (consumers list). Default 100 000. */
  maxDirs?: number;
  /** First retry delay after a failure, doubling up to 30 s. Default 1000 ms. */
  retryMs?: number;
}

export interface RepoChangeWatchStats {
  state: 'stopped' | 'starting' | 'ok' | 'error';
  dir: string;
  dirsWatched: number;
  events: number;
  errors: number;
  restarts: number;
}

export class RepoChangeWatch {
  readonly dir: string;
  /** Random per process (per object): a new process never continues an old generation. */
  readonly instance = randomBytes(8).toString('hex');
  private generation = 0;
  private state: RepoChangeWatchStats['state'] = 'stopped';
  private error: string | null = 'watcher not started';
  private readonly watchers = new Map<string, FSWatcher>();
  private readonly listeners = new Set<() => void>();
  private readonly maxDirs: number;
  private readonly retryMinMs: number;
  private retryMs: number;
  private retryTimer: NodeJS.Timeout | null = null;
  /** Increments on start/stop/failure so a walk from an earlier run stops adding watchers. */
  private run = 0;
  private readonly counts = { events: 0, errors: 0, restarts: 0 };

  constructor(dir: string, opts: RepoChangeWatchOptions = {}) {
    this.dir = resolve(dir);
    this.maxDirs = opts.maxDirs ?? 100_000;
    this.retryMinMs = this.retryMs = opts.retryMs ?? 1000;
  }

  hint(): RepoChangeHint {
    return { instance: this.instance, generation: this.generation, ok: this.state === 'ok', error: this.state === 'ok' ? null : this.error };
  }

  stats(): RepoChangeWatchStats {
    return { state: this.state, dir: this.dir, dirsWatched: this.watchers.size, ...this.counts };
  }

  /** Called after every generation bump (keep it cheap). Returns an unsubscribe function. */
  onChange(fn: () => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** Watch the tree; resolves when every directory is watched (ok) or the attempt failed (retrying). */
  async start(): Promise<void> {
    if (this.state !== 'stopped') return;
    await this.attempt();
  }

  async stop(): Promise<void> {
    if (this.state === 'stopped') return;
    this.run++;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.closeAll();
    this.state = 'stopped';
    this.error = 'watcher stopped';
    this.retryMs = this.retryMinMs;
    this.bump();
  }

  private async attempt(): Promise<void> {
    const run = ++this.run;
    this.state = 'starting';
    this.error = 'watcher starting';
    this.bump();
    try {
      await this.addTree(this.dir, run);
      if (run !== this.run) return;
      this.state = 'ok';
      this.error = null;
      this.retryMs = this.retryMinMs;
      // Every directory is watched now: anything that happened before this bump is listable after it.
      this.bump();
    } catch (err) {
      if (run === this.run) this.fail(err);
    }
  }

  private fail(err: unknown): void {
    if (this.state === 'stopped' || this.state === 'error') return;
    this.run++;
    this.counts.errors++;
    this.closeAll();
    this.state = 'error';
    const msg = errorMessage(err);
    this.error = /ENOSPC/.test(msg) ? `${msg} (inotify watch limit: raise fs.inotify.max_user_watches)` : msg;
    this.bump();
    const wait = this.retryMs;
    this.retryMs = Math.min(30_000, this.retryMs * 2);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      if (this.state !== 'error') return;
      this.counts.restarts++;
      void this.attempt();
    }, wait);
    this.retryTimer.unref();
  }

  private bump(): void {
    this.generation++;
    for (const fn of this.listeners) {
      try {
        fn();
      } catch {
        // A listener's failure is its own business; the generation is what counts.
      }
    }
  }

  private closeAll(): void {
    for (const w of this.watchers.values()) w.close();
    this.watchers.clear();
  }

  /** Watch `root` and every directory below it: each directory is watched before it is read. */
  private async addTree(root: string, run: number): Promise<void> {
    const stack = [root];
    while (stack.length) {
      if (run !== this.run) return;
      const d = stack.pop()!;
      if (this.watchers.has(d)) continue;
      if (this.watchers.size >= this.maxDirs) throw new Error(`more than ${this.maxDirs} directories under ${this.dir}`);
      const w = watch(d, { persistent: false }, (event, name) => this.onEvent(d, event, name, run));
      w.on('error', (err) => {
        if (run === this.run) this.fail(err);
      });
      this.watchers.set(d, w);
      let entries;
      try {
        entries = await readdir(d, { withFileTypes: true });
      } catch (err) {
        if (d !== this.dir && (err as NodeJS.ErrnoException).code === 'ENOENT') {
          this.unwatch(d);
          continue;
        }
        throw err;
      }
      for (const e of entries) if (e.isDirectory()) stack.push(join(d, e.name));
    }
  }

  private onEvent(d: string, event: string, name: string | Buffer | null, run: number): void {
    if (run !== this.run) return;
    this.counts.events++;
    this.bump();
    // Content changes ('change': IN_MODIFY, IN_ATTRIB) never change the directory structure.
    if (event !== 'rename') return;
    const child = name === null ? null : join(d, name.toString());
    if (child === null || (d === this.dir && name !== null && name.toString() === basename(d))) {
      void this.rescan(d, run);
      return;
    }
    void this.inspect(child, run);
  }

  /** A created, moved or deleted entry: watch a new directory tree, forget a vanished one. */
  private async inspect(p: string, run: number): Promise<void> {
    try {
      const st = await lstat(p);
      if (run !== this.run) return;
      if (st.isDirectory() && !this.watchers.has(p)) {
        await this.addTree(p, run);
        if (run === this.run) this.bump();
      }
    } catch (err) {
      if (run !== this.run) return;
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        this.unwatch(p);
        return;
      }
      this.fail(err);
    }
  }

  /** An event without a usable name: read the directory again and watch what is new. */
  private async rescan(d: string, run: number): Promise<void> {
    try {
      if (d === this.dir) {
        const st = await lstat(d);
        if (!st.isDirectory()) throw new Error(`${d} is no longer a directory`);
      }
      await this.addTree(d, run);
      for (const e of await readdir(d, { withFileTypes: true })) {
        if (e.isDirectory() && !this.watchers.has(join(d, e.name))) await this.addTree(join(d, e.name), run);
      }
      if (run === this.run) this.bump();
    } catch (err) {
      if (run !== this.run) return;
      if (d !== this.dir && (err as NodeJS.ErrnoException).code === 'ENOENT') {
        this.unwatch(d);
        return;
      }
      this.fail((err as NodeJS.ErrnoException).code === 'ENOENT' ? new Error(`watched directory ${d} vanished`) : err);
    }
  }

  /** Close the watchers of `p` and everything below it. */
  private unwatch(p: string): void {
    const prefix = p.endsWith('/') ? p : `${p}/`;
    for (const [d, w] of this.watchers) {
      if (d === p || d.startsWith(prefix)) {
        w.close();
        this.watchers.delete(d);
      }
    }
  }
}
