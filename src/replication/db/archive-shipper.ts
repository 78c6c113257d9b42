/**
 * Ships the primary's WAL archive to the standby's sidecar, so a standby that was away longer than its
 * replication slot allows catches up from the archive. A pass asks the peer what it has and pushes the
 * rest in WAL order (history files first), each with its SHA-256 in the signed path.
 *
 * An idle primary archives nothing new, so most passes would ask the peer the same question and get the
 * same answer (one signed HTTP exchange a second on both sidecars). A pass whose local listing is the
 * one the peer last confirmed having in full skips the question; the peer is still asked at least every
 * `recheckMs` (a standby that was re-cloned or lost its archive gets the files again). While the loop
 * runs, an inotify watch on the directory spares the listing, and the loop's wake-ups, until something
 * is written there or the recheck falls due.
 */
import { createHash } from 'node:crypto';
import { createReadStream, watch, type FSWatcher } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { errorMessage } from '../../errors.js';
import { gridDelayMs } from '../../util/cadence.js';
import type { EventInput } from '../../events/bus.js';
import type { PeerTransport } from '../../ports.js';
import { compareArchiveNames, isArchiveFileName } from './wal-names.js';

export interface ArchiveShipperOptions {
  /** The local primary's archive directory (archive_command writes here). */
  archiveDir: string;
  transport: PeerTransport;
  /** Base URL of the standby's sidecar, or null while there is no standby to ship to. */
  peerUrl: () => string | null;
  /** Mount point of dbPeerRouter on the peer. */
  prefix?: string;
  timeoutMs?: number;
  emit?: (e: EventInput) => void;
  /** Ask the peer at least this often even when nothing new was archived. Default 30 000 ms. */
  recheckMs?: number;
  /** Monotonic milliseconds (tests). Default performance.now. */
  now?: () => number;
}

export interface ShipResult {
  pushed: string[];
  bytes: number;
  /** Files still missing on the peer after this pass. */
  pending: number;
  error?: string;
}

async function sha256File(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
  return h.digest('hex');
}

export class ArchiveShipper {
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<ShipResult> | null = null;
  private lastError: string | null = null;
  /** The local listing the peer confirmed having in full, for which peer, and when. */
  private confirmed: { url: string; listing: string; at: number } | null = null;
  /** inotify on the archive directory while the loop runs: no event, no need to list it again. */
  private watcher: FSWatcher | null = null;
  private changed = true;
  /** The loop's interval while it runs (null: stopped), and the wall-clock time its timer is due. */
  private intervalMs: number | null = null;
  private dueAt = 0;

  constructor(private readonly o: ArchiveShipperOptions) {}

  private now(): number {
    return this.o.now ? this.o.now() : performance.now();
  }

  private get prefix(): string {
    return this.o.prefix ?? '/peer/db';
  }

  /** One pass; concurrent calls share the pass in progress. */
  shipOnce(): Promise<ShipResult> {
    this.running ??= this.pass().finally(() => (this.running = null));
    return this.running;
  }

  private async pass(): Promise<ShipResult> {
    const url = this.o.peerUrl();
    if (!url) return { pushed: [], bytes: 0, pending: 0 };
    const timeoutMs = this.o.timeoutMs ?? 60_000;
    const c = this.confirmed;
    const left = this.untilRecheck(url);
    const recent = left !== null && left > 0;
    // Watched and quiet since the last confirmed listing: not even the directory needs reading.
    if (this.watcher && !this.changed && recent) return { pushed: [], bytes: 0, pending: 0 };
    this.changed = false;
    const local = (await readdir(this.o.archiveDir).catch(() => [] as string[])).filter(isArchiveFileName).sort(compareArchiveNames);
    const listing = local.join('\n');
    if (c && recent && c.listing === listing) return { pushed: [], bytes: 0, pending: 0 };
    this.confirmed = null;
    const askedAt = this.now();
    const pushed: string[] = [];
    let bytes = 0;
    let missing: string[] = [];
    try {
      // The list is small: a path that does not answer it within 10 s is cut; the next round asks again
      // (on the path that answers by then).
      const remote = await this.o.transport.post<{ names: string[] }>(url, `${this.prefix}/archive/list`, {}, Math.min(timeoutMs, 10_000));
      const have = new Set(remote.names);
      missing = local.filter((n) => !have.has(n));
      for (const name of missing) {
        const path = join(this.o.archiveDir, name);
        const { size } = await stat(path);
        const sha = await sha256File(path);
        await this.o.transport.putStream(url, `${this.prefix}/archive/${name}?sha256=${sha}`, createReadStream(path), size, timeoutMs);
        pushed.push(name);
        bytes += size;
      }
      if (this.lastError) {
        this.o.emit?.({ type: 'db.archive.shipping', severity: 'info', message: 'WAL archive shipping to the standby works again', details: { pushed: pushed.length } });
      }
      this.lastError = null;
      this.confirmed = { url, listing, at: askedAt };
      return { pushed, bytes, pending: 0 };
    } catch (err) {
      const msg = errorMessage(err);
      if (msg !== this.lastError) {
        this.o.emit?.({ type: 'db.archive.shipping_failed', severity: 'warning', message: `WAL archive shipping to the standby failed: ${msg}`, details: { pushed: pushed.length } });
      }
      this.lastError = msg;
      return { pushed, bytes, pending: Math.max(0, missing.length - pushed.length), error: msg };
    }
  }

  /** Watch the archive directory (until stop or a watcher error); a directory not there yet is tried again later. */
  private ensureWatch(): void {
    if (this.watcher) return;
    try {
      const w = watch(this.o.archiveDir, () => this.onChange());
      w.on('error', () => {
        w.close();
        if (this.watcher === w) this.watcher = null;
        this.onChange();
      });
      this.watcher = w;
      this.changed = true;
    } catch {
      this.watcher = null;
    }
  }

  /** Something was written to the archive: ship it within one interval, even from a long idle sleep. */
  private onChange(): void {
    this.changed = true;
    if (this.intervalMs !== null && this.timer && this.dueAt - Date.now() > this.intervalMs) this.arm(gridDelayMs(this.intervalMs, Date.now()));
  }

  private arm(delayMs: number): void {
    if (this.timer) clearTimeout(this.timer);
    this.dueAt = Date.now() + delayMs;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.ensureWatch();
      void this.shipOnce().finally(() => {
        if (this.intervalMs !== null && !this.timer) this.arm(this.nextDelayMs(this.intervalMs));
      });
    }, delayMs);
  }

  /**
   * Time to the next pass: the next point of the interval's wall-clock grid (shared with the heartbeat,
   * util/cadence.ts), or, while the directory is watched, quiet and confirmed by the peer, the first grid
   * point at which the peer must be asked again (a write to the directory wakes the loop earlier).
   */
  private nextDelayMs(intervalMs: number): number {
    const step = gridDelayMs(intervalMs, Date.now());
    const left = this.watcher && !this.changed ? this.untilRecheck(this.o.peerUrl()) : null;
    return left === null || left <= step ? step : step + Math.ceil((left - step) / intervalMs) * intervalMs;
  }

  /**
   * Milliseconds until the peer at `url` must be asked again about the listing it confirmed (0 or less:
   * now), or null when it confirmed nothing (never asked, the last ask failed, or another peer).
   */
  private untilRecheck(url: string | null): number | null {
    const c = this.confirmed;
    return c && c.url === url ? c.at + (this.o.recheckMs ?? 30_000) - this.now() : null;
  }

  /** Ships on every `intervalMs` grid point until stop(); sleeps longer while there is nothing to ship. */
  start(intervalMs: number): void {
    if (this.intervalMs !== null) return;
    this.intervalMs = intervalMs;
    this.arm(gridDelayMs(intervalMs, Date.now()));
  }

  async stop(): Promise<void> {
    this.intervalMs = null;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.watcher?.close();
    this.watcher = null;
    await this.running?.catch(() => undefined);
  }
}
