/**
 * Merge-back of the config trees on a rejoin. A node that was primary may hold files its successor
 * never received (written in its last moments as primary, or while the other node was away). When it
 * rejoins as standby, the new primary's full pass would overwrite or delete them (the receiver moves
 * them aside into quarantine first) or the delete guard holds them back; either way the primary never
 * gets them. With `files.quarantine.policy: merge` (the default) this node sends the primary every file
 * it wrote while it was primary (in its trees, or moved aside into quarantine since) that the primary
 * lacks; the primary writes it only where it has nothing and did not delete that path since it became
 * primary. A path the primary holds with other content keeps the primary's version; this node's stays
 * in quarantine (the sync moves it there) and an event lists the paths.
 *
 * "Written while it was primary": a marker file `<quarantineDir>/.primary-since.json` is written (and
 * fsynced) on promotion, so it survives a kill -9, and removed when the merge is done. A file in a tree
 * counts when its ctime or mtime is at or after the marker and its content is not what this node last
 * received from the primary; a quarantined file when its quarantine folder was made after the marker
 * and its mtime is at or after it (a rename keeps the mtime). Marker and file times come from this
 * node's clock.
 *
 * Until the merge is done this node is not caught up, so a switchover or fail-back waits for it.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { lstat, readFile, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Clock, PeerTransport } from '../../ports.js';
import { systemClock } from '../../clock.js';
import { errorMessage, HaError } from '../../errors.js';
import type { FilesTreeConfig } from './config.js';
import type { EventSink } from './receiver.js';
import type { MergeOutcome, MergeRequest, MergeResponse } from './protocol.js';
import { TEMP_PREFIX } from './paths.js';
import { isMissing, sha256File } from './scan.js';
import { syncDir, writeFileDurable } from '../../util/durable.js';
import { onLivePath } from './ship.js';
import { findCandidates, type Candidate } from './merge-candidates.js';

export { FileTombstones, TOMBSTONES_FILE } from './file-tombstones.js';

export type FilesQuarantinePolicy = 'merge' | 'keep';

/** Name of the promotion marker inside quarantineDir. */
export const PRIMARY_MARKER_FILE = '.primary-since.json';
/** Paths named in one event at most (the count says how many there are). */
const EVENT_PATHS_MAX = 50;
/** Raw bytes per merge request. */
const MERGE_BATCH_BYTES = 8 * 1024 * 1024;
/**
 * Files per merge request, and entries per checksum-only question. The primary hashes or writes (fsync)
 * each one while the request waits: a busy primary answered 4,000 entries in more than the request
 * timeout, every retry asked the same, and the rejoin never finished. Small requests each finish, and
 * what one merged is "same" for the next try.
 */
const MERGE_BATCH_FILES = 200;
const MERGE_QUERY_ENTRIES = 500;
/** Largest file merged back (a JSON body carries it); larger ones are reported and left in place. */
const MERGE_FILE_MAX = 32 * 1024 * 1024;
/**
 * Right after a handover the rejoining node asks before the peer has finished its promotion, and the
 * peer refuses ("not the primary", 409): that is expected, so it is asked again every quarter second,
 * quietly, for this long before the refusal counts as a failure (event, longer pauses).
 */
const REFUSED_QUIET_MS = 10_000;
const REFUSED_RETRY_MS = 250;

export interface MergeBackStatus {
  policy: FilesQuarantinePolicy;
  /** A rejoin's files are being merged back: this node is not caught up until done. */
  rejoining: boolean;
  /** The marker's time (this node became primary then), while rejoining. */
  primarySince: string | null;
  /** Files merged into the primary in this process's lifetime. */
  merged: number;
  /** Paths the primary holds with other content (last step); this node's version stays in quarantine. */
  conflicts: string[];
  /** Paths the primary deleted since it became primary (last step): not brought back. */
  deletedOnPrimary: string[];
  lastStepAt: string | null;
  lastError: string | null;
}

export interface FilesMergeBackOptions {
  trees: readonly FilesTreeConfig[];
  quarantineDir: string;
  policy: FilesQuarantinePolicy;
  transport: PeerTransport;
  /** What this node last received for a path (the receiver's record): such content came from the primary. */
  lastReceived: (tree: string, rel: string) => Promise<string | undefined>;
  /**
   * The primary holds this content of a file this node wrote as primary (it answered "same", or took it
   * in the merge): from now on it counts as received, so the primary's next edit of it replaces it like
   * any received file instead of moving it into quarantine as a local change.
   */
  agreed?: (tree: string, rel: string, sha256: string) => void;
  events?: EventSink;
  clock?: Clock;
  basePath?: string;
  requestTimeoutMs?: number;
  /** Pause between merge steps (and first retry delay after a failure). Default 1000 ms. */
  stepMs?: number;
}

export class FilesMergeBack {
  private readonly clock: Clock;
  private readonly markerFile: string;
  private sinceMs: number | null = null;
  private peerUrl: () => string | null = () => null;
  private timer: NodeJS.Timeout | null = null;
  private stepping: Promise<void> | null = null;
  private active = false;
  private failing = false;
  /** Monotonic time of the first refusal (409) in a row, or null. */
  private refusedSince: number | null = null;
  private reported = '';
  private rejoinMerged = 0;
  /** Bumped on promotion: a step that started before never touches the new marker. */
  private gen = 0;
  /** start() ran in this stint as standby (until the next promotion). */
  private followed = false;
  private readonly st: MergeBackStatus;

  constructor(private readonly o: FilesMergeBackOptions) {
    this.clock = o.clock ?? systemClock;
    this.markerFile = join(o.quarantineDir, PRIMARY_MARKER_FILE);
    // Known at once (before the first decision cycle), so a restarted former primary never reports
    // itself caught up in the moment before its rejoin starts.
    this.st = { policy: o.policy, rejoining: existsSync(this.markerFile), primarySince: null, merged: 0, conflicts: [], deletedOnPrimary: [], lastStepAt: null, lastError: null };
  }

  get rejoining(): boolean {
    return this.st.rejoining;
  }

  status(): MergeBackStatus {
    return { ...this.st, conflicts: [...this.st.conflicts], deletedOnPrimary: [...this.st.deletedOnPrimary] };
  }

  /** This node becomes primary: stop a rejoin merge, remember when (durably) for the next rejoin. */
  async markPrimary(info: { node: string; epoch: number }): Promise<void> {
    this.stop();
    this.gen++;
    this.followed = false;
    this.sinceMs = null;
    this.st.rejoining = false;
    const at = this.clock.nowMs();
    try {
      await writeFileDurable(this.markerFile, JSON.stringify({ ...info, atMs: at, at: new Date(at).toISOString() }), TEMP_PREFIX);
    } catch (err) {
      this.o.events?.emit({
        type: 'files_merge_marker_failed',
        severity: 'warning',
        message: `Could not record that this node became primary (${this.markerFile}: ${errorMessage(err)}): if it rejoins as standby, files written here while primary are not merged back to the new primary by themselves; compare the trees by hand.`,
        details: { file: this.markerFile },
      });
    }
  }

  /** This node follows a primary: if it was primary since its last merge, merge back (once per stint as standby). */
  start(peerUrl: () => string | null): void {
    this.peerUrl = peerUrl;
    if (this.followed) return;
    this.followed = true;
    this.active = true;
    this.schedule(0);
  }

  /** Stop stepping (this node is promoted or shuts down). */
  stop(): void {
    this.active = false;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  /** Wait for a step in progress (shutdown). */
  async settle(): Promise<void> {
    await this.stepping;
  }

  private schedule(ms: number): void {
    if (!this.active || this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.stepping = this.step()
        .then((again) => {
          if (again !== null) this.schedule(again);
        })
        .finally(() => (this.stepping = null));
    }, ms);
    this.timer.unref?.();
  }

  /** One merge step; returns the delay before the next one, or null when the rejoin is done. */
  private async step(): Promise<number | null> {
    const stepMs = this.o.stepMs ?? 1000;
    const gen = this.gen;
    try {
      if (this.sinceMs === null) {
        const since = await this.readMarker();
        if (since === null) {
          this.st.rejoining = false;
          this.active = false;
          return null;
        }
        this.sinceMs = since;
        this.refusedSince = null;
        this.st.rejoining = true;
        this.st.primarySince = new Date(since).toISOString();
        this.rejoinMerged = 0;
        this.reported = '';
      }
      const first = this.peerUrl();
      if (!first) return stepMs;
      const done = await this.mergeStep(() => this.peerUrl() ?? first, this.sinceMs);
      if (gen !== this.gen || !this.active) return null;
      this.st.lastError = null;
      this.st.lastStepAt = new Date(this.clock.nowMs()).toISOString();
      this.refusedSince = null;
      if (this.failing) this.failing = false;
      if (!done) return stepMs;
      await rm(this.markerFile, { force: true });
      await syncDir(dirname(this.markerFile));
      this.st.rejoining = false;
      this.sinceMs = null;
      this.active = false;
      this.o.events?.emit({
        type: 'files_merge_done',
        severity: 'info',
        message:
          this.o.policy === 'merge'
            ? `Rejoin: ${this.rejoinMerged} file(s) this node wrote as primary were merged into the primary's trees${this.st.conflicts.length ? `; ${this.st.conflicts.length} path(s) the primary holds otherwise stay in quarantine here` : ''}${this.st.deletedOnPrimary.length ? `; ${this.st.deletedOnPrimary.length} path(s) the primary deleted were not brought back` : ''}.`
            : `Rejoin: files.quarantine.policy is keep; nothing was merged back (see files_merge_kept).`,
        details: { merged: this.rejoinMerged, conflicts: this.st.conflicts.length, deletedOnPrimary: this.st.deletedOnPrimary.length, policy: this.o.policy },
      });
      return null;
    } catch (err) {
      if (gen !== this.gen || !this.active) return null;
      this.st.lastError = errorMessage(err);
      if (err instanceof HaError && err.details?.status === 409) {
        const now = this.clock.monotonicMs();
        this.refusedSince ??= now;
        if (now - this.refusedSince < REFUSED_QUIET_MS) return Math.min(stepMs, REFUSED_RETRY_MS);
      } else this.refusedSince = null;
      if (!this.failing) {
        this.failing = true;
        this.o.events?.emit({
          type: 'files_merge_failed',
          severity: 'warning',
          message: `Merging back the files this node wrote as primary failed (${errorMessage(err)}); retrying. This node is not caught up until it is done.`,
          details: {},
        });
      }
      return Math.min(4 * stepMs, 10_000);
    }
  }

  private async readMarker(): Promise<number | null> {
    try {
      const raw = JSON.parse(await readFile(this.markerFile, 'utf8')) as { atMs?: unknown };
      if (typeof raw.atMs === 'number' && Number.isFinite(raw.atMs)) return raw.atMs;
    } catch (err) {
      if (isMissing(err)) return null;
      if (!(err instanceof SyntaxError)) throw err;
    }
    // Unreadable marker (torn by a crash, edited): its file time is the best we have.
    const st = await lstat(this.markerFile).catch(() => null);
    return st ? Math.min(st.mtimeMs, st.ctimeMs) : null;
  }

  /** True when nothing is left to send: every candidate is on the primary, or decided otherwise. */
  private async mergeStep(peer: () => string, since: number): Promise<boolean> {
    const candidates = await findCandidates(this.o, since);
    const results = new Map<string, { c: Candidate; outcome: MergeOutcome }>();
    const byTree = new Map<string, Candidate[]>();
    for (const c of candidates) {
      const l = byTree.get(c.tree) ?? [];
      l.push(c);
      byTree.set(c.tree, l);
    }
    let merged = 0;
    const tooLarge: string[] = [];
    const url = `${this.o.basePath ?? '/peer/files'}/merge`;
    const timeoutMs = this.o.requestTimeoutMs ?? 30_000;
    for (const [tree, list] of byTree) {
      // First ask what the primary has (checksums only), then send the content of what it lacks.
      const offered: Array<{ c: Candidate; sha256: string }> = [];
      for (const c of list) {
        const sha256 = await sha256File(c.abs).catch((err) => {
          if (isMissing(err)) return null; // moved meanwhile (into quarantine, say): the next step finds it there
          throw err;
        });
        if (sha256 !== null) offered.push({ c, sha256 });
      }
      const wanted: Array<{ c: Candidate; sha256: string }> = [];
      for (let i = 0; i < offered.length; i += MERGE_QUERY_ENTRIES) {
        const part = offered.slice(i, i + MERGE_QUERY_ENTRIES);
        const req: MergeRequest = { tree, dryRun: true, entries: part.map((o) => ({ path: o.c.rel, mode: o.c.mode, mtimeMs: o.c.mtimeMs, writtenMs: o.c.writtenMs, sha256: o.sha256, data: '' })) };
        const res = await onLivePath(peer, (u, signal) => this.o.transport.post<MergeResponse>(u, url, req, timeoutMs, signal));
        const byPath = new Map(part.map((o) => [o.c.rel, o]));
        for (const r of res.results ?? []) {
          const o = byPath.get(r.path);
          if (!o) continue;
          results.set(`${tree}/${r.path}`, { c: o.c, outcome: r.outcome });
          if (r.outcome === 'merged') wanted.push(o);
          else if (r.outcome === 'same' && o.c.from === 'tree') this.o.agreed?.(tree, o.c.rel, o.sha256);
        }
      }
      if (this.o.policy !== 'merge') continue;
      let batch: Array<{ c: Candidate; e: MergeRequest['entries'][number] }> = [];
      let bytes = 0;
      const send = async () => {
        if (!batch.length) return;
        const req: MergeRequest = { tree, entries: batch.map((b) => b.e) };
        const res = await onLivePath(peer, (u, signal) => this.o.transport.post<MergeResponse>(u, url, req, timeoutMs, signal));
        const byPath = new Map(batch.map((b) => [b.e.path, b]));
        for (const r of res.results ?? []) {
          const b = byPath.get(r.path);
          if (!b) continue;
          results.set(`${tree}/${r.path}`, { c: b.c, outcome: r.outcome });
          if (r.outcome === 'merged') {
            merged++;
            if (b.c.from === 'tree') this.o.agreed?.(tree, b.c.rel, b.e.sha256);
          }
        }
        batch = [];
        bytes = 0;
      };
      for (const { c } of wanted) {
        if (c.size > MERGE_FILE_MAX) {
          tooLarge.push(`${tree}/${c.rel}`);
          results.delete(`${tree}/${c.rel}`);
          continue;
        }
        let data: Buffer;
        try {
          data = await readFile(c.abs);
        } catch (err) {
          if (isMissing(err)) {
            merged++; // gone meanwhile: look again next step
            continue;
          }
          throw err;
        }
        if (batch.length && (bytes + data.length > MERGE_BATCH_BYTES || batch.length >= MERGE_BATCH_FILES)) await send();
        batch.push({ c, e: { path: c.rel, mode: c.mode, mtimeMs: c.mtimeMs, writtenMs: c.writtenMs, sha256: createSha(data), data: data.toString('base64') } });
        bytes += data.length;
      }
      await send();
    }
    const conflicts: string[] = [];
    const deleted: string[] = [];
    const lacking: string[] = [];
    for (const [key, r] of results) {
      if (r.outcome === 'conflict') conflicts.push(key);
      else if (r.outcome === 'deleted') deleted.push(key);
      else if (r.outcome === 'merged') lacking.push(key);
    }
    conflicts.sort();
    deleted.sort();
    this.st.conflicts = conflicts.slice(0, EVENT_PATHS_MAX);
    this.st.deletedOnPrimary = deleted.slice(0, EVENT_PATHS_MAX);
    this.st.merged += merged;
    this.rejoinMerged += merged;
    const key = `${conflicts.join('\n')}|${deleted.join('\n')}|${tooLarge.join('\n')}`;
    if (key !== this.reported) {
      this.reported = key;
      if (conflicts.length) {
        this.o.events?.emit({
          type: 'files_merge_conflicts',
          severity: 'warning',
          message: `${conflicts.length} file(s) this node wrote as primary are held by the primary with other content (${conflicts.slice(0, 5).join(', ')}${conflicts.length > 5 ? ', …' : ''}): the primary's version wins, this node's is kept in quarantine under ${this.o.quarantineDir}; compare them and copy back by hand what is wanted.`,
          details: { count: conflicts.length, paths: conflicts.slice(0, EVENT_PATHS_MAX) },
        });
      }
      if (deleted.length) {
        this.o.events?.emit({
          type: 'files_merge_deleted_on_primary',
          severity: 'info',
          message: `${deleted.length} file(s) deleted on the primary after this node left: kept in quarantine, not merged (${deleted.slice(0, 5).join(', ')}${deleted.length > 5 ? ', …' : ''}); this node's copies are kept in quarantine under ${this.o.quarantineDir} (the sync moves those still in the tree there); copy back by hand what is wanted.`,
          details: { count: deleted.length, paths: deleted.slice(0, EVENT_PATHS_MAX) },
        });
      }
      if (tooLarge.length) {
        this.o.events?.emit({
          type: 'files_merge_too_large',
          severity: 'warning',
          message: `${tooLarge.length} file(s) this node wrote as primary are larger than ${MERGE_FILE_MAX} bytes and are not merged back by themselves (${tooLarge.slice(0, 5).join(', ')}); copy them to the primary by hand.`,
          details: { count: tooLarge.length, paths: tooLarge.slice(0, EVENT_PATHS_MAX) },
        });
      }
      if (this.o.policy === 'keep' && (lacking.length || conflicts.length)) {
        const paths = [...lacking, ...conflicts].sort();
        this.o.events?.emit({
          type: 'files_merge_kept',
          severity: 'warning',
          message: `${paths.length} file(s) this node wrote as primary are missing on the primary or held there otherwise; files.quarantine.policy is keep, so they stay here (in the tree until the sync moves them into quarantine under ${this.o.quarantineDir}): review them and copy what is wanted.`,
          details: { count: paths.length, paths: paths.slice(0, EVENT_PATHS_MAX) },
        });
      }
    }
    // Done when a step sent nothing new: every candidate is on the primary (same), or decided.
    return merged === 0;
  }
}

function createSha(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}
