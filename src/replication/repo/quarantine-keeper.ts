/**
 * Quarantine is not a place data goes to be forgotten. A node that was primary may hold objects its
 * successor never received (acknowledged by it alone, in mode async or while degraded); when it rejoins
 * as standby, its first passes move them aside (conflictPolicy quarantine). With `repo.quarantine.policy:
 * merge` this keeper then copies every such object whose key the primary lacks to the primary; the next
 * pass brings it back into this node's bucket, and only then is the quarantined copy dropped. A key the
 * primary holds with other content stays in quarantine, and an event lists the keys.
 *
 * Which objects are "from the rejoin": those moved aside since this node last became primary. That
 * moment is a marker object in this node's own bucket (nha-quarantine/primary-since, written on
 * promotion, removed when the merge is done), so it survives a kill -9 of the node and the marker and
 * the quarantined copies carry times from the same clock (the repository's). Objects moved aside while
 * this node was a standby before (the primary deleting or replacing them) are never merged back.
 *
 * Deletes stay deleted: before merging, the keeper asks the primary for its tombstones of the keys it
 * would copy (`primaryTombstones`, the primary's delete journal). A key the primary deleted after this
 * node's copy was written (the copy's recorded write time, or the object's Last-Modified when it is still
 * in the bucket) is not copied: it stays in quarantine and one event lists the keys
 * (repo.quarantine.deleted_on_primary). Both times are wall clocks of the two nodes (NTP-synced).
 *
 * Retention: quarantined objects older than keepDays are deleted (0: never).
 */
import { Readable } from 'node:stream';
import type { ObjectInfo, ObjectStore } from '../../ports.js';
import type { EventInput } from '../../events/bus.js';
import { errorMessage } from '../../errors.js';
import { contentMd5, copyObject } from './copy.js';
import { isPlainMd5 } from './diff.js';
import { originalKey, planQuarantine, QUARANTINE_PREFIX, writtenAtOf, type QuarantinedObject } from './quarantine.js';
import { deletedAfterWrite } from '../tombstones.js';

/** Marker of "this node became primary at (the repository's) time T"; no original key, so never merged or expired. */
export const PRIMARY_MARKER_KEY = `${QUARANTINE_PREFIX}primary-since`;
/** Keys listed in one event at most (the count says how many there are). */
const EVENT_KEYS_MAX = 50;

export type QuarantinePolicy = 'merge' | 'keep';

export interface QuarantineKeeperOptions {
  /** This node's repository (holds the quarantine and the marker). */
  local: ObjectStore;
  /** The primary's repository (merge target while this node is standby). */
  peer: ObjectStore;
  policy: QuarantinePolicy;
  keepDays: number;
  emit?: (e: EventInput) => void;
  /** Wall clock (ms), for retention. */
  now?: () => number;
  /**
   * The primary's tombstones (its delete journal) for these keys: key → time of its newest delete. Asked
   * before anything is merged; a failure fails the step (retried), so nothing deleted there is merged
   * back for want of an answer. Without it (tests, the CLI) no key counts as deleted.
   */
  primaryTombstones?: (keys: string[]) => Promise<ReadonlyMap<string, { atMs: number }>>;
}

export interface QuarantineStatus {
  policy: QuarantinePolicy;
  /** A rejoin's quarantined objects are being merged back (the standby is not caught up until done). */
  rejoining: boolean;
  /** Copied to the primary in this process's lifetime. */
  merged: number;
  /** Quarantined copies dropped because both repositories hold the same content again. */
  dropped: number;
  /** Keys that stay in quarantine because the primary holds other content (last merge step). */
  conflicts: string[];
  /** Keys that stay in quarantine because the primary deleted them after this node's copy was written (last merge step). */
  deletedOnPrimary: string[];
  expired: number;
  lastMergeAt: string | null;
  lastError: string | null;
}

export interface MergeStepResult {
  done: boolean;
  merged: string[];
  dropped: number;
  conflicts: string[];
  /** Deleted on the primary after this node's copy was written: left in quarantine, not merged. */
  deletedOnPrimary: string[];
  /** Merged back earlier in this rejoin, missing on the primary again (deleted there since): left in quarantine. */
  goneAgain: string[];
}

export class QuarantineKeeper {
  private chain: Promise<unknown> = Promise.resolve();
  /** Repository time of the marker while a rejoin is being merged; null otherwise. */
  private since: number | null = null;
  /** Keys this rejoin copied to the primary: never copied twice (the primary may delete them meanwhile). */
  private readonly mergedKeys = new Set<string>();
  private reportedConflicts = '';
  private reportedDeleted = '';
  private rejoinCounts = { merged: 0, dropped: 0 };
  /**
   * Keys this rejoin found deleted on the primary after this node's copy was written. Kept across steps:
   * a later step may not list the copy again (a pass in between), and the rejoin's summary counts them
   * all; a key a later step classifies otherwise (the primary holds it again) leaves the set.
   */
  private readonly rejoinDeleted = new Set<string>();
  private readonly st: QuarantineStatus;
  private readonly now: () => number;

  constructor(private readonly o: QuarantineKeeperOptions) {
    this.now = o.now ?? Date.now;
    this.st = { policy: o.policy, rejoining: false, merged: 0, dropped: 0, conflicts: [], deletedOnPrimary: [], expired: 0, lastMergeAt: null, lastError: null };
  }

  status(): QuarantineStatus {
    return { ...this.st, conflicts: [...this.st.conflicts], deletedOnPrimary: [...this.st.deletedOnPrimary] };
  }

  /** A rejoin merge is pending: this node must not count as caught up. */
  get rejoining(): boolean {
    return this.st.rejoining;
  }

  private queue<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.chain.catch(() => undefined).then(fn);
    this.chain = run;
    return run;
  }

  /** This node became primary: remember when (in the repository's time), for the next rejoin. */
  markPrimary(info: { node: string; epoch: number }): Promise<void> {
    return this.queue(async () => {
      this.since = null;
      this.st.rejoining = false;
      try {
        const body = Buffer.from(JSON.stringify({ ...info, at: new Date(this.now()).toISOString() }));
        await this.o.local.put(PRIMARY_MARKER_KEY, Readable.from([body]), body.length);
      } catch (err) {
        this.st.lastError = errorMessage(err);
        this.o.emit?.({
          type: 'repo.quarantine.marker_failed',
          severity: 'warning',
          message: `could not record in this node's repository that it became primary (${errorMessage(err)}): if it rejoins as standby, run \`nimbus-ha repo quarantine merge\` against it by hand`,
          details: { key: PRIMARY_MARKER_KEY },
        });
      }
    });
  }

  /** This node starts following a primary: if it was primary since the last merge, a rejoin merge is due. */
  checkRejoin(): Promise<boolean> {
    return this.queue(async () => {
      try {
        const m = await this.o.local.head(PRIMARY_MARKER_KEY);
        this.since = m ? m.mtimeMs : null;
        this.st.rejoining = m !== null;
        if (m) {
          this.mergedKeys.clear();
          this.rejoinCounts = { merged: 0, dropped: 0 };
          this.rejoinDeleted.clear();
          this.reportedConflicts = '';
          this.reportedDeleted = '';
        }
        return m !== null;
      } catch (err) {
        // Unknown: try again after the next pass rather than count as caught up with objects aside.
        this.st.lastError = errorMessage(err);
        this.st.rejoining = true;
        this.since = null;
        return true;
      }
    });
  }

  /**
   * The standby's replicator finished a pass: merge what the rejoin moved aside, or what the pass could
   * not move aside yet (the delete guard refused: the pass is not `clean`). The rejoin is done only after
   * a clean pass with nothing left to copy or to see back.
   */
  afterPass(clean: boolean): Promise<MergeStepResult | null> {
    return this.queue(async () => {
      if (!this.st.rejoining) return null;
      if (this.since === null) {
        // The marker could not be read at checkRejoin: read it now.
        const m = await this.o.local.head(PRIMARY_MARKER_KEY).catch(() => undefined);
        if (m === undefined) return null;
        if (m === null) {
          this.st.rejoining = false;
          return null;
        }
        this.since = m.mtimeMs;
      }
      try {
        const r = await this.step(this.since, clean);
        this.st.lastError = null;
        return r;
      } catch (err) {
        this.st.lastError = errorMessage(err);
        this.o.emit?.({ type: 'repo.quarantine.merge_failed', severity: 'warning', message: `merging quarantined objects back failed (retried after the next clean pass): ${errorMessage(err)}`, details: {} });
        return null;
      }
    });
  }

  /** Stop a rejoin merge (this node is promoted: the marker is written afresh). */
  stop(): void {
    this.st.rejoining = false;
    this.since = null;
  }

  private async step(since: number, clean: boolean): Promise<MergeStepResult> {
    const local = await listAll(this.o.local);
    const peer = await listAll(this.o.peer, (k) => !k.startsWith(QUARANTINE_PREFIX));
    const sec = (ms: number) => Math.floor(ms / 1000);
    const candidates: Array<QuarantinedObject & { size: number }> = [];
    const localBucket = new Map<string, ObjectInfo>();
    for (const o of local.values()) {
      if (!o.key.startsWith(QUARANTINE_PREFIX)) localBucket.set(o.key, o);
      else if (originalKey(o.key) !== null && sec(o.mtimeMs) >= sec(since)) candidates.push({ key: o.key, etag: o.etag, mtimeMs: o.mtimeMs, size: o.size });
    }
    const byKey = new Map(candidates.map((c) => [c.key, c]));
    const peerEtags = new Map([...peer].map(([k, o]) => [k, o.etag]));
    let plan = planQuarantine(candidates, peerEtags, { keepDays: 0, nowMs: this.now() });
    const out: MergeStepResult = { done: false, merged: [], dropped: 0, conflicts: [], deletedOnPrimary: [], goneAgain: [] };
    let pending = clean ? 0 : 1;
    // Objects still in this node's bucket that the primary lacks: the pass would move them aside (or the
    // delete guard kept it from doing so, when they are many). Same rule as for the quarantined ones,
    // copied straight from the bucket. Not when the primary lists nothing at all (a wrong bucket, most
    // likely: the delete guard's case, not a rejoin's).
    let fromBucket = this.o.policy === 'merge' && peer.size > 0 ? [...localBucket.values()].filter((o) => !peer.has(o.key) && !this.mergedKeys.has(o.key)) : [];

    // Deletes stay deleted: what the primary deleted after this node's copy was written is not merged.
    if (this.o.policy === 'merge' && this.o.primaryTombstones && (plan.merge.length || fromBucket.length)) {
      const keys = [...new Set([...plan.merge.map((m) => m.to), ...fromBucket.map((o) => o.key)])].sort();
      const tombstones = await this.o.primaryTombstones(keys);
      if (tombstones.size) {
        // The copy's own Last-Modified is when it was moved aside: read when the original was written.
        for (const m of plan.merge) {
          if (!tombstones.has(m.to)) continue;
          const c = byKey.get(m.from)!;
          c.writtenMs = writtenAtOf((await this.o.local.head(m.from))?.metadata);
        }
        plan = planQuarantine(candidates, peerEtags, { keepDays: 0, nowMs: this.now(), tombstones });
        const gone: string[] = [];
        fromBucket = fromBucket.filter((o) => {
          if (!deletedAfterWrite(tombstones.get(o.key), o.mtimeMs)) return true;
          gone.push(o.key);
          return false;
        });
        for (const d of plan.deletedOnPrimary) {
          // Merged earlier in this rejoin and deleted there since: reported as such (never merged twice).
          if (this.mergedKeys.has(d.to)) out.goneAgain.push(d.to);
          else gone.push(d.to);
        }
        out.deletedOnPrimary = [...new Set(gone)].sort();
      }
    }

    if (this.o.policy === 'keep') {
      if (!clean) return out;
      const keys = [...plan.merge, ...plan.conflicts].map((m) => m.to);
      if (keys.length) {
        this.o.emit?.({
          type: 'repo.quarantine.kept',
          severity: 'warning',
          message: `${keys.length} object(s) this node held as primary and the primary lacks or holds otherwise stay in quarantine (repo.quarantine.policy keep): review them with \`nimbus-ha repo quarantine list\``,
          details: { count: keys.length, keys: keys.slice(0, EVENT_KEYS_MAX) },
        });
      }
      out.conflicts = plan.conflicts.map((c) => c.to);
      this.st.conflicts = out.conflicts.slice(0, EVENT_KEYS_MAX);
      await this.finish(out);
      return out;
    }

    for (const o of fromBucket) {
      await copyObject(this.o.local, this.o.peer, o, () => undefined, undefined, 'response');
      this.mergedKeys.add(o.key);
      out.merged.push(o.key);
      pending++;
    }
    for (const m of plan.merge) {
      if (out.merged.includes(m.to)) continue;
      if (this.mergedKeys.has(m.to)) {
        out.goneAgain.push(m.to);
        continue;
      }
      const src = local.get(m.from)!;
      await copyObject(this.o.local, this.o.peer, src, () => undefined, undefined, 'response', m.to);
      this.mergedKeys.add(m.to);
      out.merged.push(m.to);
      pending++;
    }
    const same = [...plan.same];
    for (const c of plan.conflicts) {
      if (await this.sameContent(byKey.get(c.from)!, peer.get(c.to)!, this.o.peer)) same.push(c);
      else out.conflicts.push(c.to);
    }
    for (const s of same) {
      const q = byKey.get(s.from)!;
      const mine = localBucket.get(s.to);
      // Dropped only once this node's own bucket holds the same content again (the primary alone is not enough).
      if (mine && (await this.sameContent(q, mine, this.o.local))) {
        await this.o.local.delete(s.from);
        out.dropped++;
      } else pending++;
    }

    this.st.merged += out.merged.length;
    this.st.dropped += out.dropped;
    this.rejoinCounts.merged += out.merged.length;
    this.rejoinCounts.dropped += out.dropped;
    this.st.conflicts = out.conflicts.slice(0, EVENT_KEYS_MAX);
    for (const k of [...plan.merge, ...plan.same, ...plan.conflicts].map((m) => m.to)) this.rejoinDeleted.delete(k);
    for (const k of out.merged) this.rejoinDeleted.delete(k);
    for (const k of out.deletedOnPrimary) this.rejoinDeleted.add(k);
    this.st.deletedOnPrimary = [...this.rejoinDeleted].sort().slice(0, EVENT_KEYS_MAX);
    this.st.lastMergeAt = new Date(this.now()).toISOString();
    const conflictKey = out.conflicts.join('\n');
    if (out.conflicts.length && conflictKey !== this.reportedConflicts) {
      this.reportedConflicts = conflictKey;
      this.o.emit?.({
        type: 'repo.quarantine.conflicts',
        severity: 'warning',
        message: `${out.conflicts.length} object(s) this node held as primary stay in quarantine: the primary holds other content under the same key (${out.conflicts.slice(0, 5).join(', ')}${out.conflicts.length > 5 ? ', …' : ''}); compare them and copy back by hand what is wanted`,
        details: { count: out.conflicts.length, keys: out.conflicts.slice(0, EVENT_KEYS_MAX) },
      });
    }
    const deletedKey = out.deletedOnPrimary.join('\n');
    if (out.deletedOnPrimary.length && deletedKey !== this.reportedDeleted) {
      this.reportedDeleted = deletedKey;
      this.o.emit?.({
        type: 'repo.quarantine.deleted_on_primary',
        severity: 'info',
        message: `${out.deletedOnPrimary.length} object(s) deleted on the primary after this node left: kept in quarantine, not merged (${out.deletedOnPrimary.slice(0, 5).join(', ')}${out.deletedOnPrimary.length > 5 ? ', …' : ''}); \`nimbus-ha repo quarantine merge\` brings back by hand what is wanted`,
        details: { count: out.deletedOnPrimary.length, keys: out.deletedOnPrimary.slice(0, EVENT_KEYS_MAX) },
      });
    }
    if (out.goneAgain.length) {
      this.o.emit?.({
        type: 'repo.quarantine.deleted_again',
        severity: 'info',
        message: `${out.goneAgain.length} object(s) merged back to the primary were deleted there since; their quarantined copies stay until retention`,
        details: { keys: out.goneAgain.slice(0, EVENT_KEYS_MAX) },
      });
    }
    if (pending === 0) await this.finish(out);
    return out;
  }

  private async finish(out: MergeStepResult): Promise<void> {
    await this.o.local.delete(PRIMARY_MARKER_KEY);
    out.done = true;
    this.st.rejoining = false;
    this.since = null;
    const deleted = this.rejoinDeleted.size;
    if (this.o.policy === 'merge' && (this.rejoinCounts.merged || this.rejoinCounts.dropped || out.conflicts.length || deleted)) {
      this.o.emit?.({
        type: 'repo.quarantine.merged',
        severity: 'info',
        message: `rejoin: ${this.rejoinCounts.merged} quarantined object(s) merged back to the primary and held by both repositories again${out.conflicts.length ? `; ${out.conflicts.length} conflict(s) stay in quarantine` : ''}${deleted ? `; ${deleted} deleted on the primary after this node left stay in quarantine` : ''}`,
        details: { merged: this.rejoinCounts.merged, dropped: this.rejoinCounts.dropped, conflicts: out.conflicts.length, deletedOnPrimary: deleted },
      });
    }
  }

  /** Whether a quarantined object (local) and `b` in `bStore` hold the same bytes: by ETag when both are plain MD5s, else by reading them. */
  private async sameContent(q: { key: string; etag: string; size: number }, b: ObjectInfo, bStore: ObjectStore): Promise<boolean> {
    if (q.size !== b.size) return false;
    if (q.etag === b.etag) return true;
    if (isPlainMd5(q.etag) && isPlainMd5(b.etag)) return false;
    return (await contentMd5(this.o.local, q.key)) === (await contentMd5(bStore, b.key));
  }

  /** Delete quarantined objects older than keepDays (0: none). Returns how many went. */
  expire(): Promise<number> {
    return this.queue(async () => {
      if (this.o.keepDays <= 0) return 0;
      const objects: QuarantinedObject[] = [];
      for await (const o of this.o.local.list(QUARANTINE_PREFIX)) objects.push({ key: o.key, etag: o.etag, mtimeMs: o.mtimeMs });
      const plan = planQuarantine(objects, new Map(), { keepDays: this.o.keepDays, nowMs: this.now() });
      let n = 0;
      for (const k of plan.expired) {
        await this.o.local.delete(k);
        n++;
      }
      this.st.expired += n;
      if (n) {
        this.o.emit?.({ type: 'repo.quarantine.expired', severity: 'info', message: `${n} quarantined object(s) older than ${this.o.keepDays} days deleted (repo.quarantine.keepDays)`, details: { count: n, keepDays: this.o.keepDays } });
      }
      return n;
    });
  }
}

async function listAll(store: ObjectStore, keep: (key: string) => boolean = () => true): Promise<Map<string, ObjectInfo>> {
  const m = new Map<string, ObjectInfo>();
  for await (const o of store.list()) if (keep(o.key)) m.set(o.key, o);
  return m;
}
