import { DB_PASSWORD, type Cluster } from '../../fixtures/cluster.js';

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A cluster node's PostgreSQL, bypassing the database VIP. */
export const directDb = (port: number) => `postgres://postgres:${DB_PASSWORD}@127.0.0.1:${port}/postgres`;

/** Poll `fn` (a throw counts as false) until it is true; fail naming `what` after `timeoutMs`. */
export async function until(what: string, fn: () => Promise<boolean>, timeoutMs: number, everyMs = 200): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await fn().catch(() => false))) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(everyMs);
  }
}

/** Start a test cluster and wait until a is primary and b its standby. */
export async function upAndPrimary(c: Cluster): Promise<void> {
  await c.start();
  await c.waitFor((a, b) => a?.role === 'primary' && b?.role === 'standby', 30_000, 'a primary, b standby');
}

/**
 * The writer's table through the database VIP, once the VIP answers: a primary binds its VIPs on the
 * decision cycle after its services pass their start-up probe, so the status can say "primary, healthy"
 * a moment before the address accepts connections.
 */
export async function prepareThroughVip(w: { prepare(): Promise<void> }, timeoutMs = 30_000): Promise<void> {
  await until('the database VIP answers', async () => {
    await w.prepare();
    return true;
  }, timeoutMs);
}
