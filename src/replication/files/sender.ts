/**
 * Runs on the primary: watches the configured trees with chokidar, batches changes for a short window
 * and ships them to the standby's receiver. A full pass (manifest exchange, checksums) runs on start,
 * when the peer changes or reconnects, and after any failed send, so nothing depends on events that
 * happened while the standby was away.
 */
import { lstat, stat } from 'node:fs/promises';
import { posix } from 'node:path';
import type { Clock } from '../../ports.js';
import { systemClock } from '../../clock.js';
import { errorMessage, HaError } from '../../errors.js';
import { isTempName, makeExcluder } from './paths.js';
import type { ManifestResponse } from './protocol.js';
import { HashCache, listBelow, statEntry } from './scan.js';
import { mapLimit } from './limit.js';
import { onLivePath, shipItems, type LocalItem, type ShipTarget } from './ship.js';
import { newWatchedTree, relInside, TreeWatches } from './tree-watch.js';
import { DeleteWindow, type DeleteLimits } from './delete-guard.js';
import { SenderDeleteGuard } from './sender-guard.js';
import { toPeerFn, type FileSenderStatus, type FileSyncSenderOptions, type PeerFn, type PeerUrl, type SenderTree as Tree } from './sender-types.js';
import { PortableLinks } from './sender-links.js';
import { diffWithStandby, guardFlush, guardPass, localManifest } from './sender-plan.js';

export type { FileSenderStatus, FileSyncSenderOptions, PeerUrl } from './sender-types.js';

export class FileSyncSender {
  private readonly trees: Tree[];
  private readonly clock: Clock;
  private readonly cache = new HashCache();
  private readonly shipped = new Map<string, string>();
  private readonly links: PortableLinks;
  private readonly watches: TreeWatches<Tree>;
  /** Counts start() calls: a start overtaken by stop() and another start() leaves the rest to that one. */
  private starts = 0;
  private verifyTimer: NodeJS.Timeout | null = null;
  /** A full pass to verify the standby's copy is due (fullPassIntervalMs, or a file with hard links changed); unlike passNeeded it does not make the standby look behind. */
  private verifyDue = false;
  private readonly guard: SenderDeleteGuard;
  private passedOnce = false;
  private peer: (() => string | null) | null;
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
    const c = opts.config;
    this.trees = c.trees.map((cfg) => ({
      ...newWatchedTree(cfg.name, cfg.path, makeExcluder(cfg.exclude)),
      cfg,
      pending: new Set(),
      copy: null,
      held: new Set(),
      window: new DeleteWindow(c.deleteWindowMs ?? 600_000),
      guardKey: null,
    }));
    this.watches = new TreeWatches(
      this.trees,
      {
        running: () => this.running,
        changed: (t, abs) => this.mark(t, abs),
        fail: (message) => this.fail(message),
        requestFullPass: () => this.requestFullPass(),
        events: opts.events,
      },
      opts.rootCheckMs ?? 1000,
    );
    this.clock = opts.clock ?? systemClock;
    const limits: DeleteLimits = {
      maxDeleteFraction: c.maxDeleteFraction ?? 0.1,
      minDeletes: c.deletesAlwaysAllowed ?? 10,
      maxDeletesPerWindow: c.maxDeletesPerWindow ?? 100,
      allowEmptySource: c.allowEmptySource ?? false,
    };
    this.guard = new SenderDeleteGuard(limits, this.clock, () => this.requestFullPass(), opts.events);
    this.peer = toPeerFn(opts.peerUrl ?? null);
    this.retryMs = opts.retryMinMs ?? 500;
    this.links = new PortableLinks(opts);
  }

  status(): FileSenderStatus {
    const pending = this.trees.reduce((n, t) => n + t.pending.size, 0);
    const held = this.trees.reduce((n, t) => n + t.held.size, 0);
    const rootsMissing = this.trees.filter((t) => t.rootId === null).map((t) => t.cfg.name);
    const filesBehind = pending + this.inFlight;
    const inSync =
      this.running && this.peerNow() !== null && this.passedOnce && !this.passNeeded && filesBehind === 0 && held === 0 && this.st.lastError === null && rootsMissing.length === 0 && this.firstChangeAt === null;
    return {
      peer: this.peerNow(),
      running: this.running,
      filesBehind,
      fullPassPending: this.passNeeded,
      ...this.st,
      linksSkipped: this.links.skipped,
      deletesHeld: held,
      lastGuard: this.guard.lastGuard,
      rootsMissing,
      inSync,
    };
  }

  /** Start watching; resolves once the watchers are ready (the first full pass then runs in the background). */
  async start(): Promise<void> {
    if (this.running) return;
    this.running = true;
    this.passNeeded = true;
    const gen = ++this.starts;
    // Stopped (and perhaps started again) while the watchers started: stop() has already cleaned up.
    if (!(await this.watches.start(() => this.running && gen === this.starts))) return;
    const every = this.opts.config.fullPassIntervalMs ?? 300_000;
    if (every > 0) {
      this.verifyTimer = setInterval(() => {
        this.verifyDue = true;
        this.kick();
      }, every);
      this.verifyTimer.unref?.();
    }
    this.kick();
  }

  async stop(): Promise<void> {
    this.running = false;
    if (this.timer) clearTimeout(this.timer);
    if (this.retryTimer) clearTimeout(this.retryTimer);
    if (this.verifyTimer) clearInterval(this.verifyTimer);
    this.guard.stop();
    this.timer = this.retryTimer = this.verifyTimer = null;
    await this.watches.stop();
    await this.loop;
  }

  /** Point the sender at a (new or reconnected) standby, or at none; a full pass follows. */
  setPeer(baseUrl: PeerUrl): void {
    this.peer = toPeerFn(baseUrl);
    this.passNeeded = true;
    this.retryMs = this.opts.retryMinMs ?? 500;
    this.kick();
  }

  private peerNow(): string | null {
    return this.peer?.() ?? null;
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

  private gone(t: Tree, rel: string): void {
    this.opts.onGone?.(t.cfg.name, rel);
  }

  private mark(t: Tree, abs: string): void {
    const rel = relInside(t.root, abs);
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
    const first = this.peerNow();
    if (!first || !this.running) return;
    // Asked again before each request: a path cut in the middle of a pass is left at once.
    const peer: PeerFn = () => this.peerNow() ?? first;
    try {
      if (this.passNeeded || this.verifyDue) await this.fullPass(peer);
      else if (this.firstChangeAt !== null) await this.flush(peer);
      if (this.failing) {
        this.failing = false;
        const s = this.status();
        const state = s.inSync
          ? 'the standby is in sync'
          : s.deletesHeld > 0
            ? `the standby keeps ${s.deletesHeld} path(s) this node no longer has (held back by the delete guard)`
            : `${s.filesBehind} change(s) are still on their way`;
        this.opts.events?.emit({ type: 'files_sync_recovered', severity: 'info', message: `File sync to ${peer()} works again; ${state}.`, details: { peer: peer(), inSync: s.inSync, deletesHeld: s.deletesHeld } });
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
      this.opts.events?.emit({ type: 'files_sync_failed', severity: 'warning', message: `File sync to the standby failed: ${message}; retrying with a full pass.`, details: { peer: this.peerNow() } });
    }
    if (this.retryTimer || !this.running) return;
    const wait = this.retryMs;
    this.retryMs = Math.min(this.retryMs * 2, this.opts.retryMaxMs ?? 10_000);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      this.kick();
    }, wait);
  }

  private target(peer: PeerFn): ShipTarget {
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
  private async flush(peer: PeerFn): Promise<void> {
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
        let items: LocalItem[] = [];
        const sigs = new Map<string, string>();
        const states = await mapLimit(rels, 16, (rel) => statEntry(t.root, rel));
        // A file with other names changed under all of them, and only this name was reported: the
        // verifying pass finds the others (inside the tree) right after this batch.
        if (states.some((x) => x !== null && x.entry.type === 'file' && x.links > 1)) {
          this.verifyDue = true;
          this.again = true; // work() runs again once this batch is done
        }
        rels.forEach((rel, i) => {
          const abs = posix.join(t.root, rel);
          const cur = states[i];
          // Gone on this node: recorded (merge-back never brings it back) whether or not the guard lets
          // the delete through. A directory's record covers everything below it.
          if (!cur) this.gone(t, rel);
          if (cur && this.shipped.get(abs) === cur.sig) return;
          if (cur) sigs.set(abs, cur.sig);
          items.push({ rel, entry: cur ? (this.links.portable(t, cur.entry) ?? null) : null });
        });
        items = await guardFlush(this.guard, t, items, () => void this.watches.checkRoots());
        if (items.length === 0) continue;
        total += await this.ship(peer, t, items, sigs);
      } catch (err) {
        for (const rel of rels) t.pending.add(rel);
        throw err;
      }
    }
    if (total > 0) this.st.lastShipMs = Math.round(this.clock.monotonicMs() - t0);
  }

  /** Ship items of one tree and keep the picture of the standby's copy current. */
  private async ship(peer: PeerFn, t: Tree, items: LocalItem[], sigs?: Map<string, string>): Promise<number> {
    this.inFlight += items.length;
    const r = await shipItems(this.target(peer), { name: t.cfg.name, root: t.root }, items, (n) => (this.inFlight = Math.max(0, this.inFlight - n)));
    this.inFlight = 0;
    const vanished = new Set(r.vanished);
    const deleted = items.filter((i) => !i.entry).map((i) => i.rel);
    const removed = this.guard.removes(t, deleted);
    t.copy?.forget(deleted);
    for (const rel of deleted) {
      this.shipped.delete(posix.join(t.root, rel));
      t.held.delete(rel);
    }
    for (const i of items) {
      if (!i.entry) continue;
      if (vanished.has(i.rel)) {
        // Gone between listing and reading: its removal goes through the guard like any other.
        sigs?.delete(posix.join(t.root, i.rel));
        t.pending.add(i.rel);
        continue;
      }
      t.copy?.set(i.rel, i.entry.type);
      t.held.delete(i.rel);
      this.opts.onWritten?.(t.cfg.name, i.rel);
    }
    if (sigs) for (const [abs, sig] of sigs) this.shipped.set(abs, sig);
    this.guard.deleted(t, removed);
    if (vanished.size > 0) this.firstChangeAt ??= this.clock.monotonicMs();
    this.record(r.entries, r.bytes);
    return r.entries;
  }

  /** Compare every tree with the standby's manifest and send the difference. */
  private async fullPass(peer: PeerFn): Promise<void> {
    this.passNeeded = false;
    this.verifyDue = false;
    const t0 = this.clock.monotonicMs();
    this.shipped.clear();
    for (const t of this.trees) {
      // The pass ships whatever the pending paths hold now; a pending path that is gone is still a
      // delete made on this node (merge-back's record).
      const pending = [...t.pending];
      const present = await mapLimit(pending, 16, (rel) => lstat(posix.join(t.root, rel)).then(() => true, () => false));
      pending.forEach((rel, i) => {
        if (!present[i]) this.gone(t, rel);
      });
      t.pending.clear();
      t.newDirs.clear();
      try {
        // An unmounted or mistyped root would look like an empty tree and wipe the standby's copy.
        const rootSt = await stat(t.root).catch(() => null);
        if (!rootSt?.isDirectory()) {
          throw new HaError('FILES_FAILED', `tree "${t.cfg.name}": ${t.root} is not a directory on this node; create it or fix files.trees (the standby copy is left alone)`);
        }
        const { local, localCount } = await localManifest(t, this.cache, this.links);
        const target = this.target(peer);
        const remote = await onLivePath(peer, (url, signal) => this.opts.transport.post<ManifestResponse>(url, `${target.basePath}/manifest`, { tree: t.cfg.name }, target.timeoutMs, signal));
        const items = diffWithStandby(t, local, remote.entries ?? []);
        t.held.clear();
        await this.ship(peer, t, guardPass(this.guard, t, items, localCount === 0));
      } catch (err) {
        this.passNeeded = true;
        throw err;
      }
    }
    this.passedOnce = true;
    if (this.trees.every((t) => t.held.size === 0)) this.guard.lastGuard = null;
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
}
