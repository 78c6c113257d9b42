/**
 * The delete journal (tombstones) of a replicated data path: which keys (repository objects, config-tree
 * paths) were deleted on this node, when (wall clock, ms) and in which epoch. A node that rejoins after
 * being away asks the primary for the tombstones of the keys it would merge back: a key deleted on the
 * primary after this node's copy was written is not merged back (an acknowledged delete stays deleted,
 * like an acknowledged write stays written); the copy stays in quarantine for the operator.
 *
 * What goes in: every delete this node acknowledges (the repository front, the config-tree watcher on
 * the primary) and every delete the sync applies here as a standby, each written before the delete is
 * acknowledged or applied. A write of the key afterwards drops its tombstone.
 *
 * Bounded: only the newest tombstone per key is kept; tombstones older than the retention (the
 * quarantine's keepDays: a quarantined copy older than that is gone anyway) are dropped, and past
 * maxEntries the oldest go. On disk the journal is a JSON-lines file, appended (one fdatasync per group of
 * concurrent deletes); it is rewritten (compacted to the live tombstones: temp file, fsync, rename) only
 * when it holds more than twice as many lines as live tombstones (and at least COMPACT_MIN_LINES).
 *
 * `TombstoneIndex` and the helpers are pure (unit-tested); `TombstoneJournal` is the thin file layer.
 */
import { mkdir, open, readFile, type FileHandle } from 'node:fs/promises';
import { dirname } from 'node:path';
import { writeFileDurable } from '../util/durable.js';

export interface Tombstone {
  key: string;
  /** Wall-clock ms of the delete on the node that recorded it. */
  atMs: number;
  /** The cluster epoch of the node when it recorded the delete, when known. */
  epoch?: number;
}

/** One line of the journal: a delete (`d`) or a write (`w`) of a key. */
export type JournalRecord = { op: 'd'; key: string; atMs: number; epoch?: number } | { op: 'w'; key: string; atMs: number };

export interface TombstoneLimits {
  /** Tombstones older than this are dropped; 0 keeps them (bounded by maxEntries). */
  retentionMs: number;
  /** Most tombstones kept; past it the oldest go. */
  maxEntries: number;
}

export const DEFAULT_MAX_TOMBSTONES = 100_000;
/** The journal is compacted only past this many lines (and twice the live tombstones). */
export const COMPACT_MIN_LINES = 1_000;
const DAY_MS = 86_400_000;

/** Retention from a quarantine's keepDays (0: keep, bounded by the entry count). */
export function retentionFromDays(days: number): number {
  return days > 0 ? days * DAY_MS : 0;
}

/** The newest tombstone per key, after applying journal records in order. Pure. */
export class TombstoneIndex {
  /** Insertion order is not time order; expiry and trimming look at atMs. */
  private readonly map = new Map<string, Tombstone>();

  constructor(private readonly limits: TombstoneLimits) {}

  get size(): number {
    return this.map.size;
  }

  /**
   * Apply one record. A delete keeps the newest time per key; a write drops a tombstone that is not
   * newer than it (a delete recorded later than the write still stands). Returns whether it changed.
   */
  apply(r: JournalRecord): boolean {
    const cur = this.map.get(r.key);
    if (r.op === 'd') {
      if (cur && cur.atMs > r.atMs) return false;
      this.map.set(r.key, r.epoch === undefined ? { key: r.key, atMs: r.atMs } : { key: r.key, atMs: r.atMs, epoch: r.epoch });
      if (this.map.size > this.limits.maxEntries) this.trim();
      return true;
    }
    if (cur && cur.atMs <= r.atMs) {
      this.map.delete(r.key);
      return true;
    }
    return false;
  }

  /** The key's tombstone, unless it is past the retention at `nowMs`. */
  get(key: string, nowMs: number): Tombstone | undefined {
    const t = this.map.get(key);
    return t && !this.expired(t, nowMs) ? t : undefined;
  }

  has(key: string): boolean {
    return this.map.has(key);
  }

  /** Drop tombstones past the retention; returns how many went. */
  expire(nowMs: number): number {
    let n = 0;
    for (const [k, t] of this.map) {
      if (this.expired(t, nowMs)) {
        this.map.delete(k);
        n++;
      }
    }
    return n;
  }

  /** The live tombstones, oldest first (what a compacted journal holds). */
  entries(): Tombstone[] {
    return [...this.map.values()].sort((a, b) => a.atMs - b.atMs || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }

  private expired(t: Tombstone, nowMs: number): boolean {
    return this.limits.retentionMs > 0 && nowMs - t.atMs > this.limits.retentionMs;
  }

  private trim(): void {
    const excess = this.map.size - this.limits.maxEntries;
    if (excess <= 0) return;
    for (const t of this.entries().slice(0, excess)) this.map.delete(t.key);
  }
}

/** True when the journal holds enough dead lines to be rewritten. */
export function needsCompaction(lines: number, live: number): boolean {
  return lines >= COMPACT_MIN_LINES && lines > 2 * live;
}

export function formatRecord(r: JournalRecord): string {
  return `${JSON.stringify(r.op === 'd' && r.epoch !== undefined ? { op: 'd', key: r.key, atMs: r.atMs, epoch: r.epoch } : { op: r.op, key: r.key, atMs: r.atMs })}\n`;
}

/** A journal line, or null for a torn or foreign one (a crash may cut the last line). */
export function parseRecord(line: string): JournalRecord | null {
  if (!line.trim()) return null;
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch {
    return null;
  }
  if (typeof v !== 'object' || v === null) return null;
  const o = v as Record<string, unknown>;
  if ((o.op !== 'd' && o.op !== 'w') || typeof o.key !== 'string' || !o.key || typeof o.atMs !== 'number' || !Number.isFinite(o.atMs)) return null;
  if (o.op === 'w') return { op: 'w', key: o.key, atMs: o.atMs };
  return typeof o.epoch === 'number' && Number.isFinite(o.epoch) ? { op: 'd', key: o.key, atMs: o.atMs, epoch: o.epoch } : { op: 'd', key: o.key, atMs: o.atMs };
}

/**
 * The merge-back rule: a copy written at `writtenAtMs` (its Last-Modified / mtime, in the writing node's
 * clock) is not merged back into a primary whose tombstone for the key is newer (the primary deleted the
 * key after the copy was written). Equal times count as "not newer": the write wins a tie.
 */
export function deletedAfterWrite(t: Pick<Tombstone, 'atMs'> | undefined, writtenAtMs: number): boolean {
  return t !== undefined && t.atMs > writtenAtMs;
}

/** The newest of several tombstones (a path's own and its parent directories'), if any. */
export function newestTombstone(ts: Array<Tombstone | undefined>): Tombstone | undefined {
  let best: Tombstone | undefined;
  for (const t of ts) if (t && (!best || t.atMs > best.atMs)) best = t;
  return best;
}

/**
 * The journal on disk: `load()` once, then `deleted()` (durable when it resolves) and `written()`.
 * Without a file it keeps the index in memory only.
 */
export class TombstoneJournal {
  private readonly index: TombstoneIndex;
  private loaded: Promise<void> | null = null;
  private fh: FileHandle | null = null;
  private lines = 0;
  private pending: string[] = [];
  private waiters: Array<{ resolve: () => void; reject: (e: unknown) => void }> = [];
  private flushing: Promise<void> | null = null;

  constructor(
    private readonly file: string | null,
    private readonly o: Partial<TombstoneLimits> & { now?: () => number } = {},
  ) {
    this.index = new TombstoneIndex({ retentionMs: o.retentionMs ?? 0, maxEntries: o.maxEntries ?? DEFAULT_MAX_TOMBSTONES });
  }

  private now(): number {
    return (this.o.now ?? Date.now)();
  }

  /** Read the journal (a torn last line is ignored), drop what is past retention, compact if due. */
  load(): Promise<void> {
    this.loaded ??= (async () => {
      if (!this.file) return;
      let text = '';
      try {
        text = await readFile(this.file, 'utf8');
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      }
      for (const line of text.split('\n')) {
        const r = parseRecord(line);
        if (r) this.index.apply(r);
        if (line) this.lines++;
      }
      this.index.expire(this.now());
      // A torn last line must not glue itself to the next append: rewrite when the file lacks its newline.
      if ((text && !text.endsWith('\n')) || needsCompaction(this.lines, this.index.size)) await this.compact();
    })();
    return this.loaded;
  }

  /** Record a delete of `key`; durable on disk when the promise resolves (write before acknowledging). */
  async deleted(key: string, epoch?: number): Promise<void> {
    await this.load();
    const r: JournalRecord = epoch === undefined ? { op: 'd', key, atMs: this.now() } : { op: 'd', key, atMs: this.now(), epoch };
    this.index.apply(r);
    await this.append(formatRecord(r), true);
  }

  /** `key` was written (again): its tombstone goes. Not awaited by writers: a lost line only keeps a stale tombstone. */
  async written(key: string): Promise<void> {
    await this.load();
    if (!this.index.has(key)) return;
    const r: JournalRecord = { op: 'w', key, atMs: this.now() };
    this.index.apply(r);
    await this.append(formatRecord(r), false);
  }

  /** The tombstones of these keys (within retention). */
  async lookup(keys: Iterable<string>): Promise<Map<string, Tombstone>> {
    await this.load();
    const now = this.now();
    const out = new Map<string, Tombstone>();
    for (const k of keys) {
      const t = this.index.get(k, now);
      if (t) out.set(k, t);
    }
    return out;
  }

  /** One key's tombstone (within retention), after load(). */
  get(key: string): Tombstone | undefined {
    return this.index.get(key, this.now());
  }

  get size(): number {
    return this.index.size;
  }

  async close(): Promise<void> {
    await this.flushing?.catch(() => undefined);
    await this.fh?.close().catch(() => undefined);
    this.fh = null;
  }

  private append(line: string, durable: boolean): Promise<void> {
    if (!this.file) return Promise.resolve();
    this.pending.push(line);
    const p = durable ? new Promise<void>((resolve, reject) => this.waiters.push({ resolve, reject })) : Promise.resolve();
    this.kick();
    return p;
  }

  /** Group commit: one write and one fdatasync for everything queued meanwhile. */
  private kick(): void {
    if (this.flushing || !this.pending.length) return;
    const lines = this.pending;
    const waiters = this.waiters;
    this.pending = [];
    this.waiters = [];
    this.flushing = (async () => {
      try {
        if (!this.fh) {
          await mkdir(dirname(this.file!), { recursive: true });
          this.fh = await open(this.file!, 'a', 0o600);
        }
        await this.fh.write(lines.join(''));
        await this.fh.datasync();
        this.lines += lines.length;
        if (needsCompaction(this.lines, this.index.size)) {
          this.index.expire(this.now());
          await this.compact();
        }
        for (const w of waiters) w.resolve();
      } catch (err) {
        // The file may now end in a partial line: start afresh on a new handle, compacting first.
        await this.fh?.close().catch(() => undefined);
        this.fh = null;
        await this.compact().catch(() => undefined);
        for (const w of waiters) w.reject(err);
      }
    })().finally(() => {
      this.flushing = null;
      this.kick();
    });
  }

  /** Rewrite the file with the live tombstones only (temp file, fsync, rename, directory fsync). */
  private async compact(): Promise<void> {
    const file = this.file!;
    const body = this.index.entries().map((t) => formatRecord({ op: 'd', ...t })).join('');
    // Inside the serialized flush: no append runs meanwhile, and the next one reopens the new file.
    await this.fh?.close().catch(() => undefined);
    this.fh = null;
    await writeFileDurable(file, body, '.nha-tmp-');
    this.lines = this.index.size;
  }
}
