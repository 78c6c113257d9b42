import type { Vip, VipContext } from '../../src/ports.js';

/**
 * Several advertised addresses that move together (VM service API, repository, database). Acquire takes
 * all of them (failing if any fails); release gives up every one even when one fails, so a demoted node
 * never keeps part of the set.
 */
export class VipGroup implements Vip {
  private wanted = false;

  constructor(private readonly members: Vip[]) {}

  describe(): string {
    return this.members.map((m) => m.describe()).join(', ');
  }

  async acquire(ctx: VipContext): Promise<void> {
    this.wanted = true;
    for (const m of this.members) await m.acquire(ctx);
  }

  async release(ctx: VipContext): Promise<void> {
    this.wanted = false;
    const errors: unknown[] = [];
    for (const m of this.members) await m.release(ctx).catch((e) => errors.push(e));
    if (errors.length) throw errors[0];
  }

  /**
   * A partly held set is reported as the opposite of what was last asked for, so reconciliation
   * finishes the job: a primary re-acquires the missing members, a non-primary releases the rest.
   */
  async held(): Promise<boolean> {
    const states = await Promise.all(this.members.map((m) => m.held()));
    if (states.every(Boolean)) return true;
    if (!states.some(Boolean)) return false;
    return !this.wanted;
  }

  async close(): Promise<void> {
    for (const m of this.members) await m.close();
  }
}
