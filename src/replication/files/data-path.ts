import type { Router } from 'express';
import type { Clock, PeerTransport } from '../../ports.js';
import type { HookContext, RoleHooks } from '../../ports.js';
import type { EventSink } from './receiver.js';
import type { FilesConfig } from './config.js';
import { FileSyncSender } from './sender.js';
import { FileSyncReceiver } from './receiver.js';
import { filesPeerRouter } from './router.js';

/**
 * Config-file sync as a data path of the agent: the sender runs only on the primary and ships to the
 * standby; the receiver accepts changes only while this node is standby.
 */
export class FilesDataPath implements RoleHooks {
  readonly name = 'files';
  readonly sender: FileSyncSender;
  readonly receiver: FileSyncReceiver;
  readonly router: Router;
  private primary = false;

  constructor(opts: { config: FilesConfig; transport: PeerTransport; events: EventSink; clock?: Clock; quarantineDir: string; isStandby: () => boolean }) {
    this.sender = new FileSyncSender({ config: opts.config, transport: opts.transport, events: opts.events, clock: opts.clock });
    this.receiver = new FileSyncReceiver({
      trees: opts.config.trees,
      quarantineDir: opts.config.quarantineDir ?? opts.quarantineDir,
      quarantineRetentionDays: opts.config.quarantineRetentionDays,
      events: opts.events,
      clock: opts.clock,
      accepting: opts.isStandby,
    });
    this.router = filesPeerRouter({ receiver: this.receiver });
  }

  async onPromote(ctx: HookContext): Promise<void> {
    this.primary = true;
    this.sender.setPeer(ctx.peer?.urls[0] ?? null);
    this.sender.start();
  }

  async onDemote(): Promise<void> {
    this.primary = false;
    await this.sender.stop();
  }

  async beforeHandover(): Promise<void> {
    const ok = await this.sender.drain(10_000);
    if (!ok) throw new Error(`config files not caught up on the standby (${this.sender.status().filesBehind} behind)`);
  }

  /** On the primary: the standby has every file we have. */
  peerCaughtUp(): boolean {
    const s = this.sender.status();
    return !this.primary || (s.running && s.filesBehind === 0 && !s.fullPassPending && s.lastError === null);
  }

  status(): Record<string, unknown> {
    return this.primary ? { role: 'sender', ...this.sender.status() } : { role: 'receiver', ...this.receiver.status() };
  }

  /** For the peer: how much this side still has to ship (sender) or when it last applied (receiver). */
  peerStatus(): Record<string, unknown> {
    if (this.primary) {
      const s = this.sender.status();
      return { role: 'sender', filesBehind: s.filesBehind, ok: s.lastError === null };
    }
    return { role: 'receiver', lastAppliedAt: this.receiver.status().lastAppliedAt };
  }

  async close(): Promise<void> {
    await this.sender.stop();
  }
}
