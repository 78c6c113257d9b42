import { join } from 'node:path';
import type { Router } from 'express';
import type { Clock, PeerRef, PeerTransport } from '../../ports.js';
import type { HookContext, RoleHooks } from '../../ports.js';
import type { EventSink } from './receiver.js';
import type { FilesConfig } from './config.js';
import { FileSyncSender } from './sender.js';
import { FileSyncReceiver } from './receiver.js';
import { filesPeerRouter } from './router.js';
import { FileTombstones, FilesMergeBack, TOMBSTONES_FILE } from './merge-back.js';
import { retentionFromDays } from '../tombstones.js';

/** The peer's URL to use now: those whose heartbeat path answers first (asked before each transfer). */
function urlNow(peer: PeerRef | null | undefined): string | null {
  if (!peer) return null;
  return (peer.ordered ? peer.ordered() : peer.urls)[0] ?? peer.urls[0] ?? null;
}

/**
 * Config-file sync as a data path of the agent: the sender runs only on the primary and ships to the
 * standby; the receiver accepts changes only while this node is standby. A node that was primary and
 * rejoins as standby merges back the files it wrote as primary that the primary lacks (merge-back.ts);
 * it is not caught up until that is done.
 */
export class FilesDataPath implements RoleHooks {
  readonly name = 'files';
  readonly sender: FileSyncSender;
  readonly receiver: FileSyncReceiver;
  readonly mergeBack: FilesMergeBack;
  /** The trees' delete journal (kept across promotions): deletes seen as primary, applied as standby. */
  readonly tombstones: FileTombstones;
  readonly router: Router;
  private primary = false;
  private peerMerging = false;
  private epoch: number | undefined;

  constructor(opts: { config: FilesConfig; transport: PeerTransport; events: EventSink; clock?: Clock; quarantineDir: string; isStandby: () => boolean }) {
    const quarantineDir = opts.config.quarantineDir ?? opts.quarantineDir;
    const nowMs = () => (opts.clock ?? { nowMs: Date.now }).nowMs();
    // Kept as long as quarantined copies are (quarantineRetentionDays, default 14; 0: bounded by count only).
    this.tombstones = new FileTombstones(join(quarantineDir, TOMBSTONES_FILE), { retentionMs: retentionFromDays(opts.config.quarantineRetentionDays ?? 14), now: nowMs });
    this.sender = new FileSyncSender({
      config: opts.config,
      transport: opts.transport,
      events: opts.events,
      clock: opts.clock,
      onGone: (tree, rel) => {
        void this.tombstones.deleted(tree, rel, this.epoch).catch(() => undefined);
        void this.receiver.forgetReceived(tree, rel).catch(() => undefined);
      },
      onWritten: (tree, rel) => this.tombstones.written(tree, rel),
    });
    this.receiver = new FileSyncReceiver({
      trees: opts.config.trees,
      quarantineDir,
      quarantineRetentionDays: opts.config.quarantineRetentionDays,
      events: opts.events,
      clock: opts.clock,
      accepting: opts.isStandby,
      mergeAccepting: () => this.primary,
      tombstones: this.tombstones,
      epoch: () => this.epoch,
    });
    this.mergeBack = new FilesMergeBack({
      trees: opts.config.trees,
      quarantineDir,
      policy: opts.config.quarantine?.policy ?? 'merge',
      transport: opts.transport,
      lastReceived: (tree, rel) => this.receiver.lastReceived(tree, rel),
      agreed: (tree, rel, sha256) => void this.receiver.agreed(tree, rel, sha256).catch(() => undefined),
      events: opts.events,
      clock: opts.clock,
    });
    this.router = filesPeerRouter({ receiver: this.receiver });
  }

  async onPromote(ctx: HookContext): Promise<void> {
    this.mergeBack.stop();
    // Durable before this node takes writes: a later rejoin knows which files it wrote as primary.
    await this.mergeBack.markPrimary({ node: ctx.node, epoch: ctx.epoch });
    this.epoch = ctx.epoch;
    this.primary = true;
    const peer = ctx.peer;
    this.sender.setPeer(peer ? () => urlNow(peer) : null);
    void this.sender.start();
  }

  async onDemote(ctx: HookContext & { to: 'standby' | 'fenced'; rejoin: boolean }): Promise<void> {
    this.primary = false;
    await this.sender.stop();
    // The merge-back starts with onFollow, once the peer is known to be primary.
    void ctx;
  }

  /** On a standby, every decision cycle: a former primary merges back (once per stint as standby). */
  async onFollow(ctx: HookContext & { primary: string }): Promise<void> {
    this.epoch = ctx.epoch;
    if (this.primary || !ctx.peer) return;
    this.follow(ctx.peer);
  }

  private follow(peer: PeerRef): void {
    this.mergeBack.start(() => urlNow(peer));
  }

  async beforeHandover(): Promise<void> {
    const ok = await this.sender.drain(10_000);
    if (!ok) throw new Error(`config files not caught up on the standby (${this.sender.status().filesBehind} behind)`);
  }

  /** On the standby: false while files this node wrote as primary are being merged back to the primary. */
  caughtUp(): boolean {
    return this.primary || !this.mergeBack.rejoining;
  }

  /** On the primary: the standby has every file we have. */
  peerCaughtUp(): boolean {
    const s = this.sender.status();
    return !this.primary || (s.running && s.filesBehind === 0 && !s.fullPassPending && s.lastError === null);
  }

  status(): Record<string, unknown> {
    const mergeBack = this.mergeBack.status();
    return this.primary
      ? { role: 'sender', ...this.sender.status(), mergedIn: this.receiver.status().mergedIn, tombstones: this.tombstones.size() }
      : { role: 'receiver', ...this.receiver.status(), caughtUp: this.caughtUp(), mergeBack };
  }

  /** For the peer: how much this side still has to ship (sender) or when it last applied (receiver). */
  peerStatus(): Record<string, unknown> {
    if (this.primary) {
      const s = this.sender.status();
      return { role: 'sender', filesBehind: s.filesBehind, ok: s.lastError === null };
    }
    return { role: 'receiver', lastAppliedAt: this.receiver.status().lastAppliedAt, ...(this.mergeBack.rejoining ? { merging: true } : {}) };
  }

  /** On the primary: when the standby finishes a merge-back, compare the trees again (held deletes included). */
  onPeerStatus(status: Record<string, unknown> | undefined): void {
    const merging = status?.merging === true;
    if (this.peerMerging && !merging && this.primary) this.sender.requestFullPass();
    this.peerMerging = merging;
  }

  async close(): Promise<void> {
    this.mergeBack.stop();
    await this.mergeBack.settle();
    await this.sender.stop();
    await this.receiver.flush();
    await this.tombstones.close();
  }
}
