/**
 * Runs on the standby: applies batches and streamed files from the primary's sender to the local trees.
 * Every batch is validated completely (tree, paths, link targets, checksums) before anything is written;
 * each file lands by write-temp, fsync, chmod, utimes, rename; diverged local files go to quarantine.
 */
import { createHash } from 'node:crypto';
import { chmod, mkdir, realpath, rename, unlink, utimes } from 'node:fs/promises';
import { posix } from 'node:path';
import type { Readable } from 'node:stream';
import type { Clock } from '../../ports.js';
import { systemClock } from '../../clock.js';
import { errorMessage, HaError } from '../../errors.js';
import type { EventInput } from '../../events/bus.js';
import type { FilesTreeConfig } from './config.js';
import { ensureParent, checkExistingAncestor, checkRealParent, lstatOrNull, syncDir, writeTemp } from './fsops.js';
import { checkLinkTarget, isTempName, makeExcluder, resolveInTree } from './paths.js';
import type { ApplyResult, Batch, FileQuery, ManifestEntry, MergeOutcome, MergeRequest, MergeResponse } from './protocol.js';
import type { FileTombstones } from './file-tombstones.js';
import { pruneQuarantine, ReceivedRecords } from './quarantine.js';
import { HashCache, scanTree, sha256File } from './scan.js';
import { mapLimit } from './limit.js';
import { parentOf, streamToTemp, TreeWriter, type ApplyCtx, type ReceiverTree } from './tree-writer.js';

/** Where receiver events go (the EventBus satisfies this). */
export interface EventSink {
  emit(input: EventInput): unknown;
}

export interface FileSyncReceiverOptions {
  /** Trees this node accepts, by name; roots are local to this node. */
  trees: readonly FilesTreeConfig[];
  /** Enables quarantine of diverged files and keeps previous copies (see the `quarantineDir` config field). */
  quarantineDir?: string;
  /** Quarantined and previous copies older than this are removed (checked at most hourly). Default 14 days; 0 keeps them. */
  quarantineRetentionDays?: number;
  /** Where last-received checksums persist across restarts; default `<quarantineDir>/.received.json`. */
  stateFile?: string;
  events?: EventSink;
  clock?: Clock;
  /**
   * Whether changes are accepted now; wire it to "this node is standby" so a stale or fenced former
   * primary cannot overwrite the trees of the node that took over. Default: always.
   */
  accepting?: () => boolean;
  /** Whether merge-back from a rejoining standby is accepted now: wire it to "this node is primary". Default: never. */
  mergeAccepting?: () => boolean;
  /**
   * This node's delete journal: the deletes this receiver applies are recorded before they are made, and
   * merge-back never brings back a path deleted here after the offered copy was written.
   */
  tombstones?: FileTombstones;
  /** The cluster epoch this node knows now (recorded with each tombstone). */
  epoch?: () => number | undefined;
}

export interface FileReceiverStatus {
  batches: number;
  filesApplied: number;
  deletes: number;
  quarantined: number;
  /** Files as received from the primary, kept under quarantineDir/previous before being overwritten or deleted. */
  keptPrevious: number;
  refused: number;
  /** Files a rejoining standby merged back into this (primary) node's trees. */
  mergedIn: number;
  lastAppliedAt: string | null;
  lastQuarantineId: string | null;
}

const WRITE_CONCURRENCY = 8;

export class FileSyncReceiver {
  private readonly trees = new Map<string, ReceiverTree>();
  private readonly records: ReceivedRecords;
  private readonly cache = new HashCache();
  private readonly clock: Clock;
  /** Lands validated entries on disk (files, directories, links, removals, quarantine). */
  private readonly writer: TreeWriter;
  private chain: Promise<unknown> = Promise.resolve();
  private prunedAt: number | null = null;
  /** Pending save of the received-file records (at most one a second). */
  private saveTimer: NodeJS.Timeout | null = null;
  private readonly st: FileReceiverStatus = {
    batches: 0,
    filesApplied: 0,
    deletes: 0,
    quarantined: 0,
    keptPrevious: 0,
    refused: 0,
    mergedIn: 0,
    lastAppliedAt: null,
    lastQuarantineId: null,
  };

  constructor(private readonly opts: FileSyncReceiverOptions) {
    for (const t of opts.trees) this.trees.set(t.name, { cfg: t, root: posix.resolve(t.path), excluded: makeExcluder(t.exclude) });
    this.clock = opts.clock ?? systemClock;
    const stateFile = opts.stateFile ?? (opts.quarantineDir ? posix.join(opts.quarantineDir, '.received.json') : undefined);
    this.records = new ReceivedRecords(stateFile);
    this.writer = new TreeWriter(this.records, this.cache, this.clock, opts, this.st);
  }

  status(): FileReceiverStatus {
    return { ...this.st };
  }

  /** What this node has in `treeName` (excluded paths left out, so the primary never deletes them). */
  async manifest(treeName: string): Promise<ManifestEntry[]> {
    const t = this.tree(treeName);
    return scanTree(t.root, t.excluded, this.cache);
  }

  /** Validate the whole batch, then apply it in order. */
  async applyBatch(batch: Batch, peer = 'peer'): Promise<ApplyResult> {
    this.checkAccepting(peer);
    const t = this.tree(batch.tree);
    const checked = batch.entries.map((e) => {
      const { rel, abs } = this.checkPath(t, e.path, peer);
      if (e.op === 'link') this.guard(t, rel, peer, () => checkLinkTarget(rel, e.target));
      let data: Buffer | undefined;
      if (e.op === 'file') {
        data = Buffer.from(e.data, 'base64');
        const got = createHash('sha256').update(data).digest('hex');
        if (got !== e.sha256) throw new HaError('FILES_FAILED', `checksum mismatch for ${rel} (sent ${e.sha256}, got ${got}); the batch was not applied and will be resent`, { path: rel });
      }
      return { e, rel, abs, data };
    });
    return this.locked(async () => {
      const ctx = await this.ctx(t);
      for (const c of checked) await this.guardAsync(t, c.rel, peer, () => checkExistingAncestor(ctx.rootReal, c.abs, c.rel));
      let applied = 0;
      // Files of a batch are distinct paths after their directories: write them in parallel so the
      // fsyncs overlap; every other op runs in order.
      for (let i = 0; i < checked.length; ) {
        if (checked[i].e.op === 'file') {
          let j = i;
          while (j < checked.length && checked[j].e.op === 'file') j++;
          await mapLimit(checked.slice(i, j), WRITE_CONCURRENCY, async ({ e, rel, abs, data }) => {
            if (e.op !== 'file') return;
            const dir = await this.guardAsync(t, rel, peer, () => parentOf(ctx, abs, rel));
            const tmp = await writeTemp(abs, data!);
            await this.writer.finalizeFile(ctx, rel, abs, tmp, e.sha256, e.mode, e.mtimeMs);
            ctx.dirs.add(dir);
          });
          applied += j - i;
          i = j;
          continue;
        }
        const { e, rel, abs } = checked[i++];
        ctx.verified.clear();
        switch (e.op) {
          case 'dir':
            await this.guardAsync(t, rel, peer, () => this.writer.applyDir(ctx, rel, abs, e.mode));
            break;
          case 'link':
            await this.guardAsync(t, rel, peer, () => this.writer.applyLink(ctx, rel, abs, e.target));
            ctx.links = true;
            break;
          case 'delete':
            await this.guardAsync(t, rel, peer, () => checkRealParent(ctx.rootReal, abs, rel));
            // Journaled before the delete is made (a rejoin then knows this path was deleted, and when).
            await this.opts.tombstones?.deleted(t.cfg.name, rel, this.opts.epoch?.());
            if (await this.writer.remove(ctx, rel, abs)) this.st.deletes++;
            ctx.dirs.add(posix.dirname(abs));
            break;
        }
        applied++;
      }
      if (ctx.links) await this.writer.recheckLinks(ctx, (path, err) => this.refused(t, path, peer, err));
      return this.finish(ctx, applied);
    });
  }

  /** The sha256 this node last received from the primary for `rel` (undefined: never, or not since it was deleted). */
  async lastReceived(treeName: string, rel: string): Promise<string | undefined> {
    await this.records.load();
    return this.records.get(treeName, rel);
  }

  /** This node deleted `rel` itself (as primary): what it once received there no longer says anything. */
  async forgetReceived(treeName: string, rel: string): Promise<void> {
    await this.records.load();
    this.records.delete(treeName, rel);
    this.saveSoon();
  }

  /** The primary holds `sha256` at `rel` too (merge-back found it there or put it there): it counts as received. */
  async agreed(treeName: string, rel: string, sha256: string): Promise<void> {
    await this.records.load();
    this.records.set(treeName, rel, sha256);
    this.saveSoon();
  }

  /** Writes a pending save of the records now (at stop: the last second's changes are not lost). */
  async flush(): Promise<void> {
    if (!this.saveTimer) return;
    clearTimeout(this.saveTimer);
    this.saveTimer = null;
    await this.locked(() => this.records.save()).catch(() => undefined);
  }

  private saveSoon(): void {
    // Saved at most once a second: an `rm -r` of a large directory must not rewrite the file per path.
    this.saveTimer ??= setTimeout(() => {
      this.saveTimer = null;
      void this.locked(() => this.records.save()).catch(() => undefined);
    }, 1000);
    this.saveTimer.unref?.();
  }

  /**
   * On the primary: files a rejoining standby wrote while it was primary. Each is written only where
   * this node has nothing at that path and did not delete it since it became primary (nor had received
   * it as standby and no longer has it); the primary's version always wins. Validated completely first,
   * like a batch.
   */
  async acceptMerge(req: MergeRequest, peer = 'peer'): Promise<MergeResponse> {
    if (!this.opts.mergeAccepting?.()) {
      throw new HaError('FILES_FAILED', `refusing merge-back from ${peer}: this node is not the primary`, { status: 409 });
    }
    const t = this.tree(req.tree);
    const checked = req.entries.map((e) => {
      const { rel, abs } = this.checkPath(t, e.path, peer);
      let data: Buffer | undefined;
      if (!req.dryRun) {
        data = Buffer.from(e.data, 'base64');
        const got = createHash('sha256').update(data).digest('hex');
        if (got !== e.sha256) throw new HaError('FILES_FAILED', `checksum mismatch for ${rel} (sent ${e.sha256}, got ${got}); nothing was merged`, { path: rel });
      }
      return { e, rel, abs, data };
    });
    return this.locked(async () => {
      const ctx = await this.ctx(t);
      await this.opts.tombstones?.load();
      const results: MergeResponse['results'] = [];
      for (const c of checked) {
        await this.guardAsync(t, c.rel, peer, () => checkExistingAncestor(ctx.rootReal, c.abs, c.rel));
        let outcome: MergeOutcome;
        const cur = await lstatOrNull(c.abs);
        if (cur) outcome = cur.isFile() && (await sha256File(c.abs)) === c.e.sha256 ? 'same' : 'conflict';
        else if (this.opts.tombstones?.deletedAfter(t.cfg.name, c.rel, c.e.writtenMs ?? c.e.mtimeMs) || this.records.get(t.cfg.name, c.rel) !== undefined) outcome = 'deleted';
        else outcome = 'merged';
        if (outcome === 'merged' && !req.dryRun) {
          const dir = await this.guardAsync(t, c.rel, peer, () => ensureParent(ctx.rootReal, c.abs, c.rel));
          const tmp = await writeTemp(c.abs, c.data!);
          try {
            await chmod(tmp, c.e.mode & 0o777);
            const mtime = c.e.mtimeMs / 1000;
            await utimes(tmp, mtime, mtime);
            // Not over anything that appeared meanwhile: the primary's version wins.
            if (await lstatOrNull(c.abs)) {
              outcome = 'conflict';
              await unlink(tmp);
            } else await rename(tmp, c.abs);
          } catch (err) {
            await unlink(tmp).catch(() => undefined);
            throw err;
          }
          if (outcome === 'merged') {
            ctx.dirs.add(dir);
            this.st.mergedIn++;
          }
        }
        results.push({ path: c.rel, outcome });
      }
      for (const d of ctx.dirs) await syncDir(d);
      return { tree: t.cfg.name, results };
    });
  }

  /** A large file streamed by the primary: hashed while written to a temp file, renamed only when it matches. */
  async receiveFile(q: FileQuery, body: Readable, peer = 'peer'): Promise<ApplyResult> {
    this.checkAccepting(peer);
    const t = this.tree(q.tree);
    const { rel, abs } = this.checkPath(t, q.path, peer);
    const rootReal = (await this.ctx(t)).rootReal;
    await this.guardAsync(t, rel, peer, () => ensureParent(rootReal, abs, rel));
    const tmp = await streamToTemp(body, abs, rel, q.sha256);
    return this.locked(async () => {
      const ctx = await this.ctx(t);
      await this.writer.finalizeFile(ctx, rel, abs, tmp, q.sha256, q.mode, q.mtime).catch(async (err) => {
        await unlink(tmp).catch(() => undefined);
        throw err;
      });
      ctx.dirs.add(posix.dirname(abs));
      return this.finish(ctx, 1);
    });
  }

  private checkAccepting(peer: string): void {
    if (this.opts.accepting && !this.opts.accepting()) {
      throw new HaError('FILES_FAILED', `refusing file changes from ${peer}: this node is not a standby`, { status: 409 });
    }
  }

  private tree(name: string): ReceiverTree {
    const t = this.trees.get(name);
    if (!t) throw new HaError('FILES_FAILED', `unknown tree "${name}": configure a tree of that name under files.trees on this node`, { tree: name, status: 404 });
    return t;
  }

  private checkPath(t: ReceiverTree, path: string, peer: string): { rel: string; abs: string } {
    const r = this.guard(t, path, peer, () => resolveInTree(t.root, path));
    if (isTempName(r.rel)) this.guard(t, path, peer, () => { throw new HaError('FILES_PATH_OUTSIDE_TREE', `refused ${path}: reserved temp-file name`); });
    return r;
  }

  /** Run a check; on FILES_PATH_OUTSIDE_TREE record a refusal event before rethrowing. */
  private guard<T>(t: ReceiverTree, path: string, peer: string, fn: () => T): T {
    try {
      return fn();
    } catch (err) {
      this.refused(t, path, peer, err);
      throw err;
    }
  }

  private async guardAsync<T>(t: ReceiverTree, path: string, peer: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      this.refused(t, path, peer, err);
      throw err;
    }
  }

  private refused(t: ReceiverTree, path: string, peer: string, err: unknown): void {
    if (!(err instanceof HaError) || err.code !== 'FILES_PATH_OUTSIDE_TREE') return;
    this.st.refused++;
    this.opts.events?.emit({
      type: 'files_path_refused',
      severity: 'warning',
      message: `Refused a file-sync path from ${peer} outside tree "${t.cfg.name}": ${errorMessage(err)}; nothing was written.`,
      details: { tree: t.cfg.name, path: String(path).slice(0, 300), peer },
    });
  }

  private async ctx(t: ReceiverTree): Promise<ApplyCtx> {
    await this.records.load();
    await this.prune();
    await mkdir(t.root, { recursive: true });
    return { tree: t, rootReal: await realpath(t.root), quarantined: 0, dirs: new Set(), verified: new Map() };
  }

  /** Drop quarantine folders past their retention, at most once an hour. */
  private async prune(): Promise<void> {
    const days = this.opts.quarantineRetentionDays ?? 14;
    const qdir = this.opts.quarantineDir;
    const now = this.clock.nowMs();
    if (!qdir || days <= 0 || (this.prunedAt !== null && now - this.prunedAt < 3_600_000)) return;
    this.prunedAt = now;
    await pruneQuarantine(qdir, now - days * 86_400_000).catch((err) => {
      this.opts.events?.emit({ type: 'files_quarantine_prune_failed', severity: 'warning', message: `Could not remove old quarantine folders under ${qdir}: ${errorMessage(err)}.`, details: {} });
    });
  }

  private locked<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.chain.then(fn, fn);
    this.chain = run.catch(() => undefined);
    return run;
  }

  private async finish(ctx: ApplyCtx, applied: number): Promise<ApplyResult> {
    for (const d of ctx.dirs) await syncDir(d);
    await this.records.save();
    this.st.batches++;
    this.st.lastAppliedAt = new Date(this.clock.nowMs()).toISOString();
    if (ctx.quarantined > 0) {
      this.st.quarantined += ctx.quarantined;
      this.st.lastQuarantineId = ctx.qid!;
      this.opts.events?.emit({
        type: 'files_quarantined',
        severity: 'warning',
        message: `Moved ${ctx.quarantined} locally changed file(s) of tree "${ctx.tree.cfg.name}" to ${posix.join(this.opts.quarantineDir!, ctx.qid!)} before replacing them with the primary's copy.`,
        details: { tree: ctx.tree.cfg.name, count: ctx.quarantined, quarantineId: ctx.qid },
      });
    }
    return { applied, quarantined: ctx.quarantined, ...(ctx.qid ? { quarantineId: ctx.qid } : {}) };
  }
}
