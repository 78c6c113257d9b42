/**
 * The file-sync sender's use of the delete guard (delete-guard.ts): how many entries of the standby's
 * copy a set of deletes removes, the verdict on it, and what a refusal does — the deletes the window
 * still has room for go, the rest are held (the standby keeps those paths), one critical event per
 * situation, and a full pass when the window has room again.
 */
import type { Clock } from '../../ports.js';
import type { CopyPicture } from './copy-picture.js';
import { checkDeletes, type DeleteLimits, type DeleteVerdict, type DeleteWindow } from './delete-guard.js';
import type { EventSink } from './receiver.js';

export type Refusal = Exclude<DeleteVerdict, { ok: true }>;

/** What the guard keeps per tree (the sender's tree record extends it). */
export interface GuardedTree {
  readonly cfg: { readonly name: string };
  /** What the standby's copy holds (path → type), or null before the first full pass. */
  copy: CopyPicture | null;
  /** Deletes the guard refused; the standby keeps these paths. */
  held: Set<string>;
  window: DeleteWindow;
  /** The last guard refusal reported for this tree (one event per situation). */
  guardKey: string | null;
}

export class SenderDeleteGuard {
  /** Why the guard last refused, or null. */
  lastGuard: string | null = null;
  private heldTimer: NodeJS.Timeout | null = null;

  constructor(
    private readonly limits: DeleteLimits,
    private readonly clock: Clock,
    /** Asked when the window has room for held deletes again (a full pass retries them). */
    private readonly retry: () => void,
    private readonly events?: EventSink,
  ) {}

  stop(): void {
    if (this.heldTimer) clearTimeout(this.heldTimer);
    this.heldTimer = null;
  }

  /** Entries of the standby's copy (files and links) a delete of `rels` removes, directories counting by content. */
  removes(t: GuardedTree, rels: readonly string[]): number {
    return t.copy ? t.copy.removes(rels) : rels.length;
  }

  verdict(t: GuardedTree, sourceEmpty: boolean, deletes: number): DeleteVerdict {
    const now = this.clock.monotonicMs();
    return checkDeletes({ sourceEmpty, copyCount: t.copy?.count() ?? 0, deletes, recentDeletes: t.window.recent(now) }, this.limits, 'file');
  }

  /** `removed` entries of the standby's copy went: they count in the window. */
  deleted(t: GuardedTree, removed: number): void {
    if (removed <= 0) return;
    t.window.add(this.clock.monotonicMs(), removed);
    if (t.held.size === 0) t.guardKey = null;
  }

  /**
   * A refused set of deletes (`n` entries of the copy): a window refusal still lets through the deletes
   * that fit in the room it has left; the others are held. Returns the deletes that go.
   */
  refuse(t: GuardedTree, rels: readonly string[], n: number, v: Refusal): Set<string> {
    const go: string[] = [];
    const held: string[] = [];
    const share = v.rule === 'window' && v.allowed > 0;
    let room = share ? v.allowed : 0;
    const by = share ? t.copy?.deletesBy(rels) : undefined;
    for (const rel of rels) {
      const k = by ? by.get(rel)! : 1;
      if (share && k <= room) {
        go.push(rel);
        room -= k;
      } else held.push(rel);
    }
    this.hold(t, held, n - this.removes(t, go), v);
    return new Set(go);
  }

  /** Refused deletes: the standby keeps the paths; one critical event per situation; the window's refusals are retried when it has room. */
  private hold(t: GuardedTree, all: readonly string[], n: number, v: Refusal): void {
    // Only paths the standby has count (raw watcher events also name paths that never existed).
    const rels = all.filter((rel) => t.copy?.has(rel) ?? true);
    for (const rel of rels) t.held.add(rel);
    const message = `Tree "${t.cfg.name}": held back ${n} delete(s) on the standby: ${v.message}.`;
    this.lastGuard = message;
    const key = `${v.rule}:${t.held.size}`;
    if (t.guardKey !== key) {
      t.guardKey = key;
      this.events?.emit({
        type: 'files_delete_guard',
        severity: 'critical',
        message,
        details: { tree: t.cfg.name, rule: v.rule, deletes: n, held: t.held.size, allowed: v.allowed, copy: t.copy?.count() ?? 0, sample: [...rels].slice(0, 10) },
      });
    }
    if (v.rule === 'window' && !this.heldTimer) {
      const now = this.clock.monotonicMs();
      const at = t.window.nextFreeAt(now);
      if (at !== null) {
        this.heldTimer = setTimeout(() => {
          this.heldTimer = null;
          this.retry();
        }, Math.max(50, at - now));
      }
    }
  }
}
