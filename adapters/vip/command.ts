import type { Vip, VipContext } from '../../src/ports.js';
import { HaError } from '../../src/errors.js';
import { runCommand } from '../command/run.js';

/** VIP through user scripts (cloud APIs, BGP announcements...), with role and epoch in the environment. */
export class CommandVip implements Vip {
  private heldFlag = false;

  constructor(private readonly cfg: { acquire: string; release: string; check?: string; timeoutMs: number }) {}

  describe(): string {
    return `command hook (${this.cfg.acquire})`;
  }

  private env(ctx: VipContext, action: string): NodeJS.ProcessEnv {
    return { NHA_ACTION: action, NHA_NODE: ctx.node, NHA_EPOCH: String(ctx.epoch), NHA_ROLE: ctx.role, NHA_REASON: ctx.reason, NHA_TAKEOVER: ctx.takeover ? '1' : '0' };
  }

  private async run(cmd: string, ctx: VipContext, action: string): Promise<void> {
    const r = await runCommand(cmd, { timeoutMs: this.cfg.timeoutMs, env: this.env(ctx, action) });
    if (r.code !== 0) {
      throw new HaError('VIP_FAILED', `${action} hook ${r.timedOut ? `timed out after ${this.cfg.timeoutMs} ms` : `exited ${r.code}`}: ${r.stderr.trim().slice(0, 300)}`);
    }
  }

  async acquire(ctx: VipContext): Promise<void> {
    await this.run(this.cfg.acquire, ctx, 'acquire');
    this.heldFlag = true;
  }

  async release(ctx: VipContext): Promise<void> {
    await this.run(this.cfg.release, ctx, 'release');
    this.heldFlag = false;
  }

  async held(): Promise<boolean> {
    if (!this.cfg.check) return this.heldFlag;
    const r = await runCommand(this.cfg.check, { timeoutMs: this.cfg.timeoutMs });
    return r.code === 0;
  }

  async close(): Promise<void> {}
}
