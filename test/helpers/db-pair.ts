/**
 * The two-node PostgreSQL pair most head-node tests start from: each node's YAML patched before the
 * start, then a primary, b streaming from it, and an independent writer acknowledging rows through the
 * database VIP.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { parse, stringify } from 'yaml';
import type { Cluster } from '../../fixtures/cluster.js';
import { DbWriter } from '../../fixtures/db-writer.js';
import { until } from './wait.js';

/** Patch each node's config file after the cluster wrote it (`then` runs after, e.g. to mount a volume). */
export function patchNodeConfigs(c: Cluster, patch: (cfg: Record<string, any>, node: 'a' | 'b') => void, then?: () => void): void {
  const prepare = c.prepare.bind(c);
  c.prepare = async () => {
    await prepare();
    for (const n of ['a', 'b'] as const) {
      const cfg = parse(readFileSync(c.nodes[n].configFile, 'utf8')) as Record<string, any>;
      patch(cfg, n);
      writeFileSync(c.nodes[n].configFile, stringify(cfg));
    }
    then?.();
  };
}

/** Start the cluster; once a is primary and b streams, a writer commits every `everyMs` and has 50 rows acknowledged. */
export async function startPairWithWriter(c: Cluster, everyMs = 10): Promise<DbWriter> {
  await c.start();
  await c.waitFor((a, b) => a?.role === 'primary' && b?.role === 'standby', 60_000, 'a primary');
  await until('b streaming', async () => (await c.status('b'))!.replication.db.streaming === true, 90_000);
  const w = new DbWriter(c.dbUrl, { everyMs });
  await w.prepare();
  w.start();
  await until('rows acknowledged', async () => w.acked.length > 50, 30_000);
  return w;
}
