/**
 * The file-sync sender's watchers: one chokidar watcher per tree, its root and the directories below it
 * checked for being replaced (moved aside and re-created, re-mounted, removed), and a tree watched afresh
 * when that happened. What it finds goes to the sender through TreeWatchHost: changed paths, a full pass
 * to run, failures. Nothing here ships anything.
 */
import { posix } from 'node:path';
import { watch, type FSWatcher } from 'chokidar';
import { errorMessage } from '../../errors.js';
import { isInside, isTempName } from './paths.js';
import type { EventSink } from './receiver.js';
import { rootIdOf } from './scan.js';
import { DirWatchCheck } from './dir-watch-check.js';

/** Longest wait for a new watcher's first scan; then the sender goes on with full passes (event files_watch_slow). */
const WATCH_READY_MAX_MS = 120_000;
/** Longest wait for a watcher to close. */
const WATCH_CLOSE_MAX_MS = 5_000;
/** How long after a watcher event the directories it touched are checked for replacement. */
const DIR_CHECK_DELAY_MS = 50;

/** What the watchers keep per tree (the sender's tree record extends it). */
export interface WatchedTree {
  readonly cfg: { readonly name: string };
  readonly root: string;
  readonly excluded: (rel: string) => boolean;
  /** Directories that appeared since the last flush; the sender lists them again at flush time. */
  newDirs: Set<string>;
  /** dev:ino + birth time of the root directory being watched, or null when it is missing. */
  rootId: string | null;
  rootMissingReported: boolean;
  watcher: FSWatcher | null;
  /** Directories below the root replaced under the watcher (see dir-watch-check.ts). */
  dirs: DirWatchCheck;
  dirCheck: { timer: NodeJS.Timeout | null; running: Promise<void> | null };
}

export interface TreeWatchHost<T extends WatchedTree> {
  running(): boolean;
  /** A path of tree `t` changed (absolute; may be outside the tree, excluded or a temp name). */
  changed(t: T, abs: string): void;
  fail(message: string): void;
  requestFullPass(): void;
  events?: EventSink;
}

/** Relative path of `abs` inside `root`, '' for the root itself, null outside it. */
export function relInside(root: string, abs: string): string | null {
  const p = posix.resolve(abs);
  if (!isInside(root, p)) return null;
  return posix.relative(root, p);
}

export function newWatchedTree(name: string, path: string, excluded: (rel: string) => boolean): WatchedTree {
  const root = posix.resolve(path);
  return {
    cfg: { name },
    root,
    excluded,
    newDirs: new Set(),
    rootId: null,
    rootMissingReported: false,
    watcher: null,
    dirs: new DirWatchCheck(root, excluded),
    dirCheck: { timer: null, running: null },
  };
}

export class TreeWatches<T extends WatchedTree> {
  /** Releases a watchTree() waiting for its watcher's ready event (the watcher is being closed). */
  private readonly readyWaits = new Map<FSWatcher, () => void>();
  private rootTimer: NodeJS.Timeout | null = null;
  private rootCheck: Promise<void> | null = null;
  private watchOps: Promise<void> = Promise.resolve();

  constructor(
    private readonly trees: readonly T[],
    private readonly host: TreeWatchHost<T>,
    private readonly rootCheckMs = 1000,
  ) {}

  /**
   * Watch every tree whose root exists, then check the roots every rootCheckMs. `current` turns false
   * when a stop() (and perhaps another start) overtook this start: it then leaves the rest to them and
   * returns false.
   */
  async start(current: () => boolean): Promise<boolean> {
    for (const t of this.trees) {
      t.rootId = await rootIdOf(t.root);
      if (t.rootId && current()) await this.watchTree(t);
    }
    if (!current()) return false;
    this.rootTimer = setInterval(() => void this.checkRoots(), this.rootCheckMs);
    return true;
  }

  async stop(): Promise<void> {
    if (this.rootTimer) clearInterval(this.rootTimer);
    this.rootTimer = null;
    // A watcher still in its first scan would hold up the root check or rewatch waiting for it.
    for (const release of [...this.readyWaits.values()]) release();
    await this.rootCheck;
    await this.watchOps;
    for (const t of this.trees) {
      if (t.dirCheck.timer) clearTimeout(t.dirCheck.timer);
      t.dirCheck.timer = null;
      await t.dirCheck.running;
    }
    await Promise.all(this.trees.map((t) => this.unwatch(t)));
  }

  /**
   * A root that was moved aside and re-created, re-mounted or removed keeps an inotify watch on the old
   * directory (or on nothing): chokidar would go quiet. Compare the root's identity with the watched one
   * and watch the new directory, with an event and a full pass.
   */
  checkRoots(): Promise<void> {
    this.rootCheck ??= this.exclusive(async () => {
      for (const t of this.trees) {
        if (!this.host.running()) break;
        const id = await rootIdOf(t.root);
        if (id === t.rootId) continue;
        const was = t.rootId;
        t.rootId = id;
        if (id === null) {
          await this.unwatch(t);
          if (!t.rootMissingReported) {
            t.rootMissingReported = true;
            this.host.events?.emit({
              type: 'files_root_missing',
              severity: 'critical',
              message: `Tree "${t.cfg.name}": its root ${t.root} is gone on this node (moved, removed or unmounted); nothing is deleted on the standby, and sync resumes when the directory is back.`,
              details: { tree: t.cfg.name, root: t.root },
            });
          }
          continue;
        }
        await this.afresh(t, () => {
          t.rootMissingReported = false;
          this.host.events?.emit({
            type: 'files_root_replaced',
            severity: 'warning',
            message: `Tree "${t.cfg.name}": its root ${t.root} is ${was === null ? 'back' : 'a different directory now (replaced or re-mounted)'}; watching it and comparing it with the standby's copy in a full pass.`,
            details: { tree: t.cfg.name, root: t.root, was, now: id },
          });
        });
      }
    })
      .catch((err) => this.host.fail(`checking the roots of the trees: ${errorMessage(err)}`))
      .finally(() => (this.rootCheck = null));
    return this.rootCheck;
  }

  /** Close the tree's watcher, watch it again, say why (`announce`) and ask for a full pass. */
  private async afresh(t: T, announce: () => void): Promise<void> {
    await this.unwatch(t);
    if (!this.host.running()) return;
    await this.watchTree(t);
    announce();
    this.host.requestFullPass();
  }

  private async watchTree(t: T): Promise<void> {
    // What an earlier watch (an earlier term as primary) recorded is stale: directories replaced since
    // would look replaced now and set off a rewatch in the middle of this one.
    t.dirs = new DirWatchCheck(t.root, t.excluded);
    const w = watch(t.root, {
      ignoreInitial: true,
      followSymlinks: false,
      atomic: false,
      persistent: true,
      // chokidar watches every file it tracks with an fs.watch of its own (an inotify watch and a handle
      // each, all closed one by one in a single tick when their directory goes). Files are left to their
      // directory's watch instead: its raw events name every file created, written, chmod-ed, renamed or
      // removed in it, and a flush looks at each named path. Directories and symlinks stay tracked.
      ignored: (p: string, stats?: { isFile(): boolean }) => {
        if (stats?.isFile()) return true;
        const rel = relInside(t.root, p);
        return rel !== null && rel !== '' && (isTempName(rel) || t.excluded(rel));
      },
    });
    t.watcher = w;
    w.on('all', (ev, p) => {
      if (t.watcher !== w) return;
      // Files created in a new directory before chokidar's watch on it is in place are never
      // reported; listing the directory again at flush time catches them.
      if (ev === 'addDir') {
        const rel = relInside(t.root, p);
        if (rel) t.newDirs.add(rel);
        void t.dirs.record(posix.resolve(p));
      }
      t.dirs.touched(posix.resolve(p));
      this.scheduleDirCheck(t, w);
      // The root itself went away (moved aside, unmounted): look at it now rather than at the next tick.
      if (ev === 'unlinkDir' && posix.resolve(p) === t.root) void this.checkRoots();
      this.host.changed(t, p);
    });
    // chmod on a file read since its last write emits no 'change' in chokidar; raw events catch it.
    w.on('raw', (_ev, evPath, details: unknown) => {
      if (t.watcher !== w) return;
      const watched = (details as { watchedPath?: string } | undefined)?.watchedPath;
      if (!watched || typeof evPath !== 'string' || !evPath) return;
      if (posix.basename(watched) === evPath) this.host.changed(t, watched);
      this.host.changed(t, posix.join(watched, evPath));
      // A directory replaced with nothing changing inside it shows only here (a rename in its parent).
      t.dirs.touched(posix.join(watched, evPath));
      this.scheduleDirCheck(t, w);
    });
    w.on('error', (err) => {
      if (t.watcher === w) this.host.fail(`watcher of tree "${t.cfg.name}": ${errorMessage(err)}`);
    });
    // chokidar never emits ready for a watcher closed during its first scan (close() drops the
    // listeners): unwatch() releases this wait too, so start() and a rewatch always return.
    const ready = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), WATCH_READY_MAX_MS);
      const done = (ok: boolean) => {
        clearTimeout(timer);
        this.readyWaits.delete(w);
        resolve(ok);
      };
      this.readyWaits.set(w, () => done(false));
      w.once('ready', () => done(true));
    });
    if (t.watcher !== w || !this.host.running()) return;
    if (!ready) {
      // Still scanning after all this time: events may be missing; the full pass compares the tree anyway.
      this.host.events?.emit({ type: 'files_watch_slow', severity: 'warning', message: `Tree "${t.cfg.name}": the watcher was not ready after ${WATCH_READY_MAX_MS / 1000} s; relying on full passes until it is.`, details: { tree: t.cfg.name } });
      this.host.requestFullPass();
    }
    await t.dirs.recordTree();
  }

  /**
   * Soon after watcher events, look for directories replaced under the watcher (moved aside and
   * re-created at once). chokidar keeps watching the old one and everything below it, so the tree is
   * watched afresh and compared with the standby's copy in a full pass.
   */
  private scheduleDirCheck(t: T, w: FSWatcher): void {
    if (t.dirCheck.timer || t.dirCheck.running || !t.dirs.pending) return;
    t.dirCheck.timer = setTimeout(() => {
      t.dirCheck.timer = null;
      const again = () => {
        const cur = t.watcher;
        if (cur && this.host.running()) this.scheduleDirCheck(t, cur);
      };
      // The watcher was replaced meanwhile: the new one has its own record and suspects.
      if (t.watcher !== w || !this.host.running()) return again();
      t.dirCheck.running = t.dirs
        .replaced()
        .then((dirs) => {
          if (dirs.length && t.watcher === w && this.host.running()) {
            void this.rewatch(t, w, dirs).catch((err) => this.host.fail(`watching tree "${t.cfg.name}" afresh: ${errorMessage(err)}`));
          }
        })
        .catch(() => undefined)
        .finally(() => {
          t.dirCheck.running = null;
          again();
        });
    }, DIR_CHECK_DELAY_MS);
  }

  /** Watch a tree afresh after directories below its root were replaced, then a full pass. */
  private rewatch(t: T, w: FSWatcher, dirs: string[]): Promise<void> {
    return this.exclusive(async () => {
      if (t.watcher !== w || !this.host.running()) return;
      const rels = dirs.map((d) => relInside(t.root, d) ?? d);
      await this.afresh(t, () =>
        this.host.events?.emit({
          type: 'files_dir_replaced',
          severity: 'info',
          message: `Tree "${t.cfg.name}": ${rels.length === 1 ? `directory ${rels[0]} was` : `${rels.length} directories were`} replaced (moved aside and created again); watching the tree afresh and comparing it with the standby's copy in a full pass.`,
          details: { tree: t.cfg.name, dirs: rels.slice(0, 10) },
        }),
      );
    });
  }

  /** Runs watcher replacements (root check, rewatch) one at a time. */
  private exclusive(job: () => Promise<void>): Promise<void> {
    const run = this.watchOps.then(job);
    this.watchOps = run.catch(() => undefined);
    return run;
  }

  private async unwatch(t: T): Promise<void> {
    const w = t.watcher;
    t.watcher = null;
    if (!w) return;
    this.readyWaits.get(w)?.();
    const closing = w.close();
    // close() drops every listener while a first scan may still be running; a scan error after that
    // (EACCES, EIO) would be an unheard 'error'.
    w.on('error', () => undefined);
    // Bounded: a close that never settles must not hold up stop() or later watcher changes.
    await Promise.race([closing, new Promise<void>((r) => setTimeout(r, WATCH_CLOSE_MAX_MS).unref?.())]);
  }
}
