/**
 * Chaos benchmark: `nimbus-ha chaos` for 100 random fault cycles (default), then one table row per fault
 * kind and the summary as one JSON object.
 *
 *   npm run bench:chaos -- [--cycles 100] [--seed S] [--profile fast|frugal|lan]
 */
import { parseArgs } from 'node:util';
import { runChaos, type CycleReport } from '../../src/cli/chaos/run.js';
import { TIMING_PROFILES, type TimingProfile } from '../../src/config/schema.js';
import { percentile, table } from '../lib/report.js';

const { values } = parseArgs({ options: { cycles: { type: 'string', default: '100' }, seed: { type: 'string' }, profile: { type: 'string', default: 'fast' } } });
const cycles = Number(values.cycles);
const seed = values.seed !== undefined ? Number(values.seed) : Math.floor(Math.random() * 2 ** 31);
const profile = values.profile as TimingProfile;
if (!(cycles >= 1) || !Number.isInteger(seed) || !(profile in TIMING_PROFILES)) {
  console.error('usage: --cycles N (>= 1) --seed S (integer) --profile fast|frugal|lan');
  process.exit(2);
}

const res = await runChaos({ cycles, seed, scenarios: [], profile, json: false });
const byKind = new Map<string, CycleReport[]>();
for (const c of res.cycles) byKind.set(c.scenario, [...(byKind.get(c.scenario) ?? []), c]);
console.log(
  '\n' +
    table(
      [...byKind].sort().map(([kind, cs]) => ({
        fault: kind,
        cycles: cs.length,
        failed: cs.filter((c) => !c.ok).length,
        'rows lost': cs.reduce((a, c) => a + Math.max(0, c.rows.lost), 0),
        'images lost': cs.reduce((a, c) => a + Math.max(0, c.images.lost), 0),
        'files lost': cs.reduce((a, c) => a + Math.max(0, c.files.lost), 0),
        'double primary': cs.reduce((a, c) => a + c.double_primary_samples, 0),
        'sql gap p50 ms': percentile(cs.map((c) => c.client_gap_ms.sql), 50),
        'converge p50 ms': percentile(cs.filter((c) => c.converge_ms !== null).map((c) => c.converge_ms!), 50),
        'converge max ms': Math.max(0, ...cs.map((c) => c.converge_ms ?? 0)),
      })),
    ),
);
console.log(JSON.stringify(res.summary));
const s = res.summary as { failed_cycles: unknown[] };
process.exitCode = s.failed_cycles.length ? 1 : 0;
