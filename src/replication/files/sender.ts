/**
 * Runs on the primary: watches the configured trees with chokidar, batches changes for a short window
 * and ships them to the standby's receiver. A full pass (manifest exchange, checksums) runs on start,
 * when the peer changes or reconnects, and after any failed send, so nothing depends on events that
 * happened while the standby was away.
 */
import { stat } from 'node:fs/promises';
import { posix } from 'node:path';
import { watch, type FSWatcher } from 'chokidar';
import type { Clock, PeerTransport } from '../../ports.js';
import { systemClock } from '../../clock.js';
import { errorMessage, HaError } from '../../errors.js';
import type { FilesConfig, FilesTreeConfig } from './config.js';
import { isInside, isTempName, makeExcluder, relativizeLinkTarget } from './paths.js';
import type { ManifestEntry, ManifestResponse } from './protocol.js';
import type { EventSink } from './receiver.js';
import { differs } from './diff.js';
import { HashCache, listBelow, scanTree, statEntry } from './scan.js';
import { mapLimit } from './limit.js';
import { shipItems, type LocalItem, type ShipTarget } from './ship.js';

export interface FileSyncSenderOptions {
  /** The `files` config section (trees, batchMs, maxBatchMs, largeFileBytes). */
  config: Pick<FilesConfig, 'trees' | 'batchMs' | 'maxBatchMs' | 'largeFileBytes'>;
  /** Signed peer transport (PeerClient in production). */
  transport: PeerTransport;
  /** Base URL of the standby's sidecar, or null while there is no standby to ship to. */
  peerUrl?: string | null;
  /** Where the receiver's router is mounted. Default "/peer/files". */
  basePath?: string;
  events?: EventSink;
  clock?: Clock;
  /** Timeout of one JSON request. Default 15 s. */
  requestTimeoutMs?: number;
  /** First retry delay after a failure; doubles up to retryMaxMs. Defaults 500 ms / 10 s. */
  retryMinMs?: number;
  retryMaxMs?: number;
}

export interface FileSenderStatus {
  peer: string | null;
  running: boolean;
  /** Paths changed here and not yet confirmed by the standby (0 when in sync). */
  filesBehind: number;
  /** Whether a full pass is due (after start, a peer change or a failure). */
  fullPassPending: boolean;
  lastPassAt: string | null;
  /** Duration of the last successful shipment (batch or pass), in ms. */
  lastShipMs: number | null;
  lastShipAt: string | null;
  lastError: string | null;
  passes: number;
  entriesShipped: number;
  bytesShipped: number;
  /** Symlinks not synced because they point outside their tree. */
  linksSkipped: number;
}

interface Tree {
  cfg: FilesTreeConfig;
  root: string;
  excluded: (rel: string) => boolean;
  pending: Set<string>;
  /** Directories that appeared since the last flush; listed again at flush time (see start()). */
  newDirs: Set<string>;
}

export class FileSyncSender {
  private readonly trees: Tree[];
  private readonly clock: Clock;
  private readonly cache = new HashCache();
  private readonly shipped = new Map<string, string>();
  private readonly skippedLinks = new Set<string>();
  private watchers: FSWatcher[] = [];
  private peer: string | null;
  private running = false;
  private passNeeded = true;
  private firstChangeAt: number | null = null;
  private lastChangeAt = 0;
  private timer: NodeJS.Timeout | null = null;
  private retryTimer: NodeJS.Timeout | null = null;
  private retryMs: number;
  private loop: Promise<void> | null = null;
  private again = false;
  private inFlight = 0;
  private failing = false;
  private readonly st = {
    lastPassAt: null as string | null,
    lastShipMs: null as number | null,
    lastShipAt: null as string | null,
    lastError: null as string | null,
    passes: 0,
    entriesShipped: 0,
    bytesShipped: 0,
  };

  constructor(private readonly opts: FileSyncSenderOptions) {
    this.trees = opts.config.trees.map((cfg) => ({ cfg, root: posix.resolve(cfg.path), excluded: makeExcluder(cfg.exclude), pending: new Set(), newDirs: new Set() }));
    this.clock = opts.clock ?? systemClock;
    this.peer = opts.peerUrl ?? null;
    this.retryMs = opts.retryMinMs ?? 500;
  }

  status(): FileSenderStatus {
    const pending = this.trees.reduce((n, t) => n + t.pending.size, 0);
    return { peer: this.peer, running: this.running, filesBehind: pending + this.inFlight, fullPassPending: this.passNeeded, ...this.st, linksSkipped: this.skippedLinks.size };
  }

  /** Start watching; resolves once the watchers are ready (the first full pass then runs in the background). */
  async start(): Promise<void> {
    if (this.running) return;
    this.running = true;
    this.passNeeded = true;
    for (const t of this.trees) {
      const w = watch(t.root, {
        ignoreInitial: true,
        followSymlinks: false,
        atomic: false,
        persistent: true,
        ignored: (p: string) => {
          const rel = this.relOf(t, p);
          return rel !== null && rel !== '' && (isTempName(rel) || t.excluded(rel));
        },
      });
      w.on('all', (ev, p) => {
        // Files created in a new directory before chokidar's watch on it is in place are never
        // reported; listing the directory again at flush time catches them.
        if (ev === 'addDir') {
          const rel = this.relOf(t, p);
          if (rel) t.newDirs.add(rel);
        }
        this.mark(t, p);
      });
      // chmod on a file read since its last write emits no 'change' in chokidar; raw events catch it.
      w.on('raw', (_ev, evPath, details: unknown) => {
        const watched = (details as { watchedPath?: string } | undefined)?.watchedPath;
        if (!watched || typeof evPath !== 'string' || !evPath) return;
        if (posix.basename(watched) === evPath) this.mark(t, watched);
        this.mark(t, posix.join(watched, evPath));
      });
      w.on('error', (err) => this.fail(`watcher of tree "${t.cfg.name}": ${errorMessage(err)}`));
      await new Promise<void>((resolve) => w.once('ready', () => resolve()));
      this.watchers.push(w);
    }
    this.kick();
  }

  async stop(): Promise<void> {
    this.running = false;
    if (this.timer) clearTimeout(this.timer);
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.timer = this.retryTimer = null;
    await Promise.all(this.watchers.map((w) => w.close()));
    this.watchers = [];
    await this.loop;
  }

  /** Point the sender at a (new or reconnected) standby, or at none; a full pass follows. */
  setPeer(baseUrl: string | null): void {
    this.peer = baseUrl;
    this.passNeeded = true;
    this.retryMs = this.opts.retryMinMs ?? 500;
    this.kick();
  }

  /** Ask for a full pass now (e.g. the agent saw the standby reconnect). */
  requestFullPass(): void {
    this.passNeeded = true;
    this.kick();
  }

  /** Resolves when nothing is pending or in flight (or the deadline passed); for tests and switchover. */
  async drain(timeoutMs: number): Promise<boolean> {
    const deadline = this.clock.monotonicMs() + timeoutMs;
    while (this.clock.monotonicMs() < deadline) {
      const s = this.status();
      if (s.filesBehind === 0 && !s.fullPassPending && !this.loop && !this.timer) return true;
      await this.clock.sleep(20);
    }
    return false;
  }

  private relOf(t: Tree, abs: string): string | null {
    const p = posix.resolve(abs);
    if (!isInside(t.root, p)) return null;
    return posix.relative(t.root, p);
  }

  private mark(t: Tree, abs: string): void {
    const rel = this.relOf(t, abs);
    if (!rel || isTempName(rel) || t.excluded(rel)) return;
    t.pending.add(rel);
    const now = this.clock.monotonicMs();
    this.firstChangeAt ??= now;
    this.lastChangeAt = now;
    this.schedule();
  }

  private schedule(): void {
    if (this.timer || this.firstChangeAt === null || !this.running) return;
    const due = Math.min(this.lastChangeAt + this.opts.config.batchMs, this.firstChangeAt + this.opts.config.maxBatchMs);
    const wait = Math.max(0, due - this.clock.monotonicMs());
    this.timer = setTimeout(() => {
      this.timer = null;
      if (this.firstChangeAt === null) return;
      const dueNow = Math.min(this.lastChangeAt + this.opts.config.batchMs, this.firstChangeAt + this.opts.config.maxBatchMs);
      if (this.clock.monotonicMs() + 1 < dueNow) this.schedule();
      else this.kick();
    }, wait);
  }

  private kick(): void {
    if (!this.running) return;
    if (this.loop) {
      this.again = true;
      return;
    }
    this.loop = this.work().finally(() => {
      this.loop = null;
      if (this.again) {
        this.again = false;
        this.kick();
      }
    });
  }

  private async work(): Promise<void> {
    if (!this.peer || !this.running) return;
    const peer = this.peer;
    try {
      if (this.passNeeded) await this.fullPass(peer);
      else if (this.firstChangeAt !== null) await this.flush(peer);
      if (this.failing) {
        this.failing = false;
        this.opts.events?.emit({ type: 'files_sync_recovered', severity: 'info', message: `File sync to ${peer} works again; the standby is in sync.`, details: { peer } });
      }
      this.st.lastError = null;
      this.retryMs = this.opts.retryMinMs ?? 500;
      if (this.firstChangeAt !== null) this.schedule();
    } catch (err) {
      this.fail(errorMessage(err));
    }
  }

  private fail(message: string): void {
    this.st.lastError = message;
    this.passNeeded = true;
    this.inFlight = 0;
    if (!this.failing) {
      this.failing = true;
      this.opts.events?.emit({ type: 'files_sync_failed', severity: 'warning', message: `File sync to the standby failed: ${message}; retrying with a full pass.`, details: { peer: this.peer } });
    }
    if (this.retryTimer || !this.running) return;
    const wait = this.retryMs;
    this.retryMs = Math.min(this.retryMs * 2, this.opts.retryMaxMs ?? 10_000);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      this.kick();
    }, wait);
  }

  private target(peer: string): ShipTarget {
    return {
      transport: this.opts.transport,
      peerUrl: peer,
      basePath: this.opts.basePath ?? '/peer/files',
      timeoutMs: this.opts.requestTimeoutMs ?? 15_000,
      largeFileBytes: this.opts.config.largeFileBytes,
      maxBatchBytes: 8 * 1024 * 1024,
      maxBatchEntries: 5_000,
    };
  }

  /** Ship the pending paths of every tree; on failure they go back to pending (and a pass is due). */
  private async flush(peer: string): Promise<void> {
    this.firstChangeAt = null;
    const t0 = this.clock.monotonicMs();
    let total = 0;
    for (const t of this.trees) {
      for (const dir of t.newDirs) for (const rel of await listBelow(t.root, dir, t.excluded)) t.pending.add(rel);
      t.newDirs.clear();
      if (t.pending.size === 0) continue;
      const rels = [...t.pending];
      t.pending.clear();
      try {
        const items: LocalItem[] = [];
        const sigs = new Map<string, string>();
        const states = await mapLimit(rels, 16, (rel) => statEntry(t.root, rel));
        rels.forEach((rel, i) => {
          const abs = posix.join(t.root, rel);
          const cur = states[i];
          if (cur && this.shipped.get(abs) === cur.sig) return;
          if (cur) sigs.set(abs, cur.sig);
          items.push({ rel, entry: cur ? (this.portable(t, cur.entry) ?? null) : null });
        });
        if (items.length === 0) continue;
        this.inFlight += items.length;
        const r = await shipItems(this.target(peer), { name: t.cfg.name, root: t.root }, items, (n) => (this.inFlight = Math.max(0, this.inFlight - n)));
        this.inFlight = 0;
        for (const i of items) if (!i.entry) this.shipped.delete(posix.join(t.root, i.rel));
        for (const [abs, sig] of sigs) this.shipped.set(abs, sig);
        this.record(r.entries, r.bytes);
        total += r.entries;
      } catch (err) {
        for (const rel of rels) t.pending.add(rel);
        throw err;
      }
    }
    if (total > 0) this.st.lastShipMs = Math.round(this.clock.monotonicMs() - t0);
  }

  /** Compare every tree with the standby's manifest and send the difference. */
  private async fullPass(peer: string): Promise<void> {
    this.passNeeded = false;
    const t0 = this.clock.monotonicMs();
    this.shipped.clear();
    for (const t of this.trees) {
      t.pending.clear();
      t.newDirs.clear();
      try {
        // An unmounted or mistyped root would look like an empty tree and wipe the standby's copy.
        const rootSt = await stat(t.root).catch(() => null);
        if (!rootSt?.isDirectory()) {
          throw new HaError('FILES_FAILED', `tree "${t.cfg.name}": ${t.root} is not a directory on this node; create it or fix files.trees (the standby copy is left alone)`);
        }
        const local = new Map<string, ManifestEntry>();
        for (const e of await scanTree(t.root, t.excluded, this.cache)) {
          const fixed = this.portable(t, e);
          if (fixed) local.set(e.path, fixed);
        }
        const remote = await this.opts.transport.post<ManifestResponse>(peer, `${this.target(peer).basePath}/manifest`, { tree: t.cfg.name }, this.target(peer).timeoutMs);
        const items: LocalItem[] = [];
        const remoteMap = new Map<string, ManifestEntry>();
        for (const r of remote.entries ?? []) {
          if (isTempName(r.path) || t.excluded(r.path)) continue;
          remoteMap.set(r.path, r);
          if (!local.has(r.path)) items.push({ rel: r.path, entry: null });
        }
        for (const [rel, e] of local) if (differs(e, remoteMap.get(rel))) items.push({ rel, entry: e });
        this.inFlight = items.length;
        const r = await shipItems(this.target(peer), { name: t.cfg.name, root: t.root }, items, (n) => (this.inFlight = Math.max(0, this.inFlight - n)));
        this.inFlight = 0;
        this.record(r.entries, r.bytes);
      } catch (err) {
        this.passNeeded = true;
        throw err;
      }
    }
    this.st.passes++;
    this.st.lastPassAt = new Date(this.clock.nowMs()).toISOString();
    this.st.lastShipMs = Math.round(this.clock.monotonicMs() - t0);
  }

  private record(entries: number, bytes: number): void {
    if (entries === 0) return;
    this.st.entriesShipped += entries;
    this.st.bytesShipped += bytes;
    this.st.lastShipAt = new Date(this.clock.nowMs()).toISOString();
  }

  /** Links are made relative when they stay inside the tree; others are skipped and reported once. */
  private portable(t: Tree, e: ManifestEntry): ManifestEntry | undefined {
    if (e.type !== 'link') return e;
    const target = relativizeLinkTarget(t.root, e.path, e.target);
    const key = `${t.cfg.name}/${e.path}`;
    if (target === null) {
      if (!this.skippedLinks.has(key)) {
        this.skippedLinks.add(key);
        this.opts.events?.emit({
          type: 'files_link_skipped',
          severity: 'warning',
          message: `Not syncing symlink ${e.path} in tree "${t.cfg.name}": its target "${e.target}" is outside the tree.`,
          details: { tree: t.cfg.name, path: e.path, target: e.target },
        });
      }
      return undefined;
    }
    this.skippedLinks.delete(key);
    return { ...e, target };
  }
}
