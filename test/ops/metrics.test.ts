/**
 * /metrics as an operator's Prometheus sees it: a real pair with a witness, a switchover, and the text
 * each node serves checked by promtool (Debian `prometheus`, installed by scripts/install-system-deps.sh;
 * without it those checks skip with a message). The shipped alert rules pass their promtool unit tests.
 */
import { execFile, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Cluster } from '../../fixtures/cluster.js';

const promtool = spawnSync('promtool', ['--version'], { stdio: 'ignore' }).status === 0;
if (!promtool) console.warn('metrics.test: promtool not found (Debian package prometheus; scripts/install-system-deps.sh installs it): its checks skip');
const docs = join(import.meta.dirname, '..', '..', 'docs', 'prometheus');

function run(args: string[], input?: string): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    const child = execFile('promtool', args, { cwd: docs, timeout: 30_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, out: `${stdout}${stderr}` });
    });
    if (input !== undefined) child.stdin!.end(input);
  });
}

let cluster: Cluster | null = null;
afterEach(async () => {
  await cluster?.stop();
  cluster = null;
});

const series = (text: string, name: string) => {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) if (line.startsWith(`${name}{`) || line.startsWith(`${name} `)) out.set(line.slice(0, line.lastIndexOf(' ')), Number(line.slice(line.lastIndexOf(' ') + 1)));
  return out;
};

describe('metrics an operator can alert on', () => {
  it('counters exist at 0 from the start, a switchover counts once on the new primary, and promtool finds nothing to lint', async () => {
    cluster = new Cluster();
    await cluster.start();
    await cluster.waitFor((a, b) => a?.role === 'primary' && b?.role === 'standby', 30_000, 'a primary, b standby');
    const scrape = async (n: 'a' | 'b') => (await fetch(`${cluster!.nodes[n].url}/metrics`)).text();
    const before = await scrape('b');
    const kinds = series(before, 'nimbus_ha_failovers_total');
    for (const kind of ['failover', 'switchover', 'failback', 'promoted']) expect(kinds.has(`nimbus_ha_failovers_total{kind="${kind}"}`)).toBe(true);
    expect(kinds.get('nimbus_ha_failovers_total{kind="switchover"}')).toBe(0);
    expect(series(before, 'nimbus_ha_events_total').get('nimbus_ha_events_total{type="fenced"}')).toBe(0);
    expect(series(before, 'nimbus_ha_fenced_total').get('nimbus_ha_fenced_total')).toBe(0);
    expect(before).toMatch(/^# TYPE nimbus_ha_decision_cycles_total counter$/m);
    expect(before).not.toMatch(/^nimbus_ha_data_behind[ {]/m);
    expect(before).not.toMatch(/_total gauge$/m);

    const r = await cluster.admin('a', '/admin/switchover', {});
    expect(r.status).toBe(202);
    await cluster.waitFor((a, b) => a?.role === 'standby' && b?.role === 'primary', 20_000, 'b primary');
    const after = await scrape('b');
    expect(series(after, 'nimbus_ha_failovers_total').get('nimbus_ha_failovers_total{kind="switchover"}')).toBe(1);
    expect(series(after, 'nimbus_ha_failovers_total').get('nimbus_ha_failovers_total{kind="failover"}')).toBe(0);

    if (!promtool) return;
    for (const text of [after, await scrape('a')]) {
      const lint = await run(['check', 'metrics'], text);
      expect(lint.out.trim()).toBe('');
      expect(lint.code).toBe(0);
    }
  });

  it.skipIf(!promtool)('the shipped alert rules are valid and pass their unit tests (docs/prometheus)', async () => {
    const check = await run(['check', 'rules', 'alerts.yml']);
    expect(check.code, check.out).toBe(0);
    const test = await run(['test', 'rules', 'alerts.test.yml']);
    expect(test.code, test.out).toBe(0);
    expect(test.out).toContain('SUCCESS');
  });
});
