import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';

/**
 * Replay protection that survives a restart. The nonce cache only remembers what this process has
 * seen, so a request captured shortly before a restart would be accepted again afterwards. A receiver
 * therefore refuses every signed request stamped before its own start (such a request was signed for a
 * process that no longer exists), and keeps a per-sender high-water mark of accepted timestamps in a
 * small file, so that a sender whose clock runs ahead of ours cannot have its last messages replayed
 * either: after a restart the floor for a sender is the later of our start and its mark.
 *
 * The mark is written at most every `persistEveryMs` (not on the hot path); what a crash can lose is
 * that last interval, and only for a sender whose clock is ahead of the receiver's by more than it.
 */
export class ReplayGuard {
  private readonly startMs: number;
  private readonly floors = new Map<string, number>();
  private readonly marks = new Map<string, number>();
  private dirty = false;
  private timer: NodeJS.Timeout | null = null;
  private readonly persistEveryMs: number;

  constructor(
    /** Where the high-water marks are kept (null: memory only; the start floor still applies). */
    private readonly file: string | null = null,
    opts: { nowMs?: number; persistEveryMs?: number } = {},
  ) {
    this.startMs = opts.nowMs ?? Date.now();
    this.persistEveryMs = opts.persistEveryMs ?? 2000;
    if (file) {
      try {
        const d = JSON.parse(readFileSync(file, 'utf8')) as { senders?: Record<string, number> };
        for (const [node, ts] of Object.entries(d.senders ?? {})) {
          if (typeof ts === 'number' && Number.isFinite(ts)) {
            this.floors.set(node, ts + 1);
            this.marks.set(node, ts);
          }
        }
      } catch {
        // No file yet (first start) or unreadable: the start floor alone applies.
      }
    }
  }

  /** The earliest timestamp accepted from `node`. */
  floorOf(node: string): number {
    return Math.max(this.startMs, this.floors.get(node) ?? 0);
  }

  /** Why a request from `node` stamped `ts` is refused, or null when it may be accepted. */
  check(node: string, ts: number): string | null {
    if (ts < this.floorOf(node)) return 'signed before this receiver started (replayed from an earlier run?)';
    return null;
  }

  /** Record an accepted (fully verified) request. */
  accepted(node: string, ts: number): void {
    if (!this.file) return;
    if (ts <= (this.marks.get(node) ?? 0)) return;
    if (this.marks.size >= 64 && !this.marks.has(node)) return; // a bounded file; only real senders verify
    this.marks.set(node, ts);
    this.dirty = true;
    this.timer ??= setTimeout(() => this.flush(), this.persistEveryMs).unref();
  }

  /** Write the marks now (also called on stop). */
  flush(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (!this.file || !this.dirty) return;
    this.dirty = false;
    try {
      mkdirSync(dirname(this.file), { recursive: true });
      const tmp = `${this.file}.tmp`;
      writeFileSync(tmp, JSON.stringify({ senders: Object.fromEntries(this.marks) }) + '\n', { mode: 0o600 });
      renameSync(tmp, this.file);
    } catch {
      // A data directory that cannot be written fails louder elsewhere (epoch store); the start floor remains.
    }
  }

  close(): void {
    this.flush();
  }
}
