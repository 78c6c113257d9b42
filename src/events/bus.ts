import { appendFile, mkdir, open, rename, rm, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { HaEvent, Notifier } from '../ports.js';
import { errorMessage } from '../errors.js';

export type EventInput = Omit<HaEvent, 'node' | 'epoch' | 'time'> & { epoch?: number };
type Listener = (e: HaEvent) => void;

/**
 * Events about roles and epochs: kept in a ring of their own, so no amount of other events (refused
 * requests, path flaps) pushes them out of /events. Critical events are kept there too.
 */
export const IMPORTANT_EVENT_TYPES: ReadonlySet<string> = new Set([
  'agent_started',
  'role_changed',
  'promoted',
  'failover',
  'switchover',
  'failback',
  'demoted',
  'fenced',
  'rejoined',
  'peer_dead',
  'peer_alive',
  'peer_incompatible',
  'peer_compatible',
  'peer_version',
  'vote_granted',
  'takeover_offered',
  'handover_started',
  'handover_draining',
  'handover_aborted',
  'handover_failed',
  'escalation_handover',
  'maintenance_on',
  'maintenance_off',
  'request_done',
  'request_refused',
]);

export function isImportantEvent(e: Pick<HaEvent, 'type' | 'severity'>): boolean {
  return IMPORTANT_EVENT_TYPES.has(e.type) || e.severity === 'critical';
}

/** At most this much of the history is read at start to fill the rings (events are ~300 bytes). */
const HISTORY_LOAD_MAX_BYTES = 8 * 1024 * 1024;

/**
 * The event bus: every event goes to the JSONL history file (append, in order), a bounded in-memory
 * ring for /events, listeners (metrics, logs), and the notifier queue (in order, one at a time).
 */
export class EventBus {
  /** Other events (bounded by ringSize). */
  private readonly ring: { seq: number; e: HaEvent }[] = [];
  /** Role and epoch events (also bounded by ringSize, never displaced by the others). */
  private readonly importantRing: { seq: number; e: HaEvent }[] = [];
  private seq = 0;
  private readonly listeners: Listener[] = [];
  private readonly subscribers = new Set<(e: HaEvent, seq: number) => void>();
  private writeChain: Promise<void> = Promise.resolve();
  private notifyChain: Promise<void> = Promise.resolve();
  private pendingNotifications = 0;
  /** Bytes of the current history file (read once, then counted), or null before the first write. */
  private historyBytes: number | null = null;

  constructor(
    private readonly node: string,
    private readonly epochOf: () => number,
    private readonly opts: {
      historyFile?: string;
      /** Rotate the history file when it would grow past this many bytes (0 or unset: never). */
      historyMaxBytes?: number;
      /** Rotated files kept besides the current one (`<file>.1` newest … `<file>.N` oldest). Default 5. */
      historyFiles?: number;
      ringSize?: number;
      notifiers?: Notifier[];
      /** Which event types reach notifiers (all when undefined). */
      notifyTypes?: string[];
      nowMs?: () => number;
      onNotifyError?: (notifier: string, event: HaEvent, err: unknown) => void;
    } = {},
  ) {}

  on(listener: Listener): void {
    this.listeners.push(listener);
  }

  /**
   * Every event from now on with its sequence number (increasing; events loaded from the history have
   * numbers below every live one), until the returned function is called.
   */
  subscribe(fn: (e: HaEvent, seq: number) => void): () => void {
    this.subscribers.add(fn);
    return () => void this.subscribers.delete(fn);
  }

  /** Events kept in memory with a sequence number above `seq` (oldest first, at most `limit`). */
  since(seq: number, limit = 500): { seq: number; e: HaEvent }[] {
    return this.merged((x) => x.seq > seq, limit);
  }

  /** The newest `limit` events kept in memory, with their sequence numbers, oldest first. */
  recentWithSeq(limit: number): { seq: number; e: HaEvent }[] {
    return this.merged(null, limit);
  }

  /** The newest `limit` entries of both rings that pass `keep`, in emission order. */
  private merged(keep: ((x: { seq: number; e: HaEvent }) => boolean) | null, limit: number): { seq: number; e: HaEvent }[] {
    const pick = (ring: { seq: number; e: HaEvent }[]) => (keep ? ring.filter(keep) : ring).slice(-limit);
    return [...pick(this.ring), ...pick(this.importantRing)].sort((a, b) => a.seq - b.seq).slice(-limit);
  }

  emit(input: EventInput): HaEvent {
    const event: HaEvent = {
      type: input.type,
      node: this.node,
      epoch: input.epoch ?? this.epochOf(),
      time: new Date(this.opts.nowMs ? this.opts.nowMs() : Date.now()).toISOString(),
      severity: input.severity,
      message: input.message,
      // Always present (an empty object when there is nothing to add): receivers need not test for it.
      details: input.details ?? {},
    };
    const ring = isImportantEvent(event) ? this.importantRing : this.ring;
    const seq = this.seq++;
    ring.push({ seq, e: event });
    const max = this.opts.ringSize ?? 500;
    if (ring.length > max) ring.splice(0, ring.length - max);
    for (const l of this.listeners) {
      try {
        l(event);
      } catch {
        /* a listener must never break event recording */
      }
    }
    for (const fn of this.subscribers) {
      try {
        fn(event, seq);
      } catch {
        /* nor a subscriber */
      }
    }
    const file = this.opts.historyFile;
    if (file) {
      const line = JSON.stringify(event) + '\n';
      this.writeChain = this.writeChain
        .then(async () => {
          await mkdir(dirname(file), { recursive: true });
          await this.rotateIfFull(file, Buffer.byteLength(line));
          await appendFile(file, line);
          this.historyBytes = (this.historyBytes ?? 0) + Buffer.byteLength(line);
        })
        .catch(() => undefined);
    }
    const notifiers = this.opts.notifiers ?? [];
    if (notifiers.length && (!this.opts.notifyTypes || this.opts.notifyTypes.includes(event.type))) {
      this.pendingNotifications++;
      this.notifyChain = this.notifyChain.then(async () => {
        for (const n of notifiers) {
          try {
            await n.send(event);
          } catch (err) {
            this.opts.onNotifyError?.(n.name, event, err);
          }
        }
        this.pendingNotifications--;
      });
    }
    return event;
  }

  /**
   * Before an append of `adding` bytes: when the file would pass historyMaxBytes, shift `<file>.i` to
   * `<file>.i+1` (the oldest beyond historyFiles is removed) and start a new file.
   */
  private async rotateIfFull(file: string, adding: number): Promise<void> {
    const max = this.opts.historyMaxBytes ?? 0;
    if (max <= 0) return;
    this.historyBytes ??= await stat(file).then((s) => s.size, () => 0);
    if (this.historyBytes === 0 || this.historyBytes + adding <= max) return;
    const keep = this.opts.historyFiles ?? 5;
    await rm(`${file}.${keep}`, { force: true });
    for (let i = keep - 1; i >= 1; i--) await rename(`${file}.${i}`, `${file}.${i + 1}`).catch(() => undefined);
    if (keep >= 1) await rename(file, `${file}.1`).catch(() => undefined);
    else await rm(file, { force: true });
    this.historyBytes = 0;
  }

  /**
   * Fills the in-memory rings from the history (rotated files included), e.g. at start, so /events
   * shows what happened before a restart. Events emitted since are kept after them.
   */
  async loadHistory(): Promise<number> {
    const file = this.opts.historyFile;
    if (!file) return 0;
    const max = this.opts.ringSize ?? 500;
    const events = await readHistory(file, { files: this.opts.historyFiles ?? 5, limit: 2 * max, maxBytes: HISTORY_LOAD_MAX_BYTES });
    const earlier = events.map((e) => ({ seq: 0, e }));
    const important = earlier.filter((x) => isImportantEvent(x.e)).slice(-max);
    const others = earlier.filter((x) => !isImportantEvent(x.e)).slice(-max);
    // Sequence numbers below every live event, in file order.
    let seq = -earlier.length;
    for (const x of earlier) x.seq = seq++;
    this.importantRing.unshift(...important);
    this.ring.unshift(...others);
    if (this.importantRing.length > max) this.importantRing.splice(0, this.importantRing.length - max);
    if (this.ring.length > max) this.ring.splice(0, this.ring.length - max);
    return events.length;
  }

  /** Most recent events, oldest first, optionally only those of some types. */
  recent(opts: { limit?: number; types?: string[] } = {}): HaEvent[] {
    const types = opts.types?.length ? opts.types : null;
    return this.merged(types ? (x) => types.includes(x.e.type) : null, opts.limit ?? 100).map((x) => x.e);
  }

  /** Resolves when the history file and notifier queue have caught up. */
  async flush(): Promise<void> {
    await this.writeChain;
    await this.notifyChain;
  }

  get notificationsPending(): number {
    return this.pendingNotifications;
  }
}

export { errorMessage };

/**
 * Reads an event history written by EventBus, rotated files included (`<file>.N` oldest … `<file>.1`,
 * then `<file>`), oldest first; at most the `limit` newest events, from at most the newest `maxBytes`
 * of the files (a file is read from its end: a 64 MiB history is not read whole for its last events).
 * Lines that do not parse (a line cut by a crash, or cut by the byte budget) are skipped. Parsing yields
 * to the event loop every few thousand lines, so a large read does not stall the heartbeats.
 */
export async function readHistory(file: string, opts: { files?: number; limit?: number; maxBytes?: number } = {}): Promise<HaEvent[]> {
  const keep = opts.files ?? 5;
  const limit = opts.limit ?? Infinity;
  let budget = opts.maxBytes ?? Infinity;
  // Newest file first, so a limit reads only as many files as it needs.
  const paths = [file, ...Array.from({ length: keep }, (_, i) => `${file}.${i + 1}`)];
  const chunks: HaEvent[][] = [];
  let count = 0;
  for (const p of paths) {
    if (count >= limit || budget <= 0) break;
    const tail = await readTail(p, budget);
    if (tail === null) continue;
    budget -= tail.bytes;
    const text = tail.text;
    const events: HaEvent[] = [];
    const lines = text.split('\n');
    for (let i = 0; i < lines.length; i++) {
      const line = lines[i];
      if (i > 0 && i % 5000 === 0) await new Promise((r) => setImmediate(r));
      if (!line.trim()) continue;
      try {
        events.push(JSON.parse(line) as HaEvent);
      } catch {
        /* a torn line */
      }
    }
    chunks.unshift(events);
    count += events.length;
  }
  const out = chunks.flat();
  return Number.isFinite(limit) ? out.slice(-limit) : out;
}

/** The last `maxBytes` of a file (all of it when smaller) and its length, or null when it cannot be read. */
async function readTail(path: string, maxBytes: number): Promise<{ text: string; bytes: number } | null> {
  let fh;
  try {
    fh = await open(path, 'r');
  } catch {
    return null;
  }
  try {
    const { size } = await fh.stat();
    const len = Number.isFinite(maxBytes) ? Math.min(size, maxBytes) : size;
    const buf = Buffer.alloc(len);
    const { bytesRead } = await fh.read(buf, 0, len, size - len);
    return { text: buf.subarray(0, bytesRead).toString('utf8'), bytes: bytesRead };
  } catch {
    return null;
  } finally {
    await fh.close();
  }
}
