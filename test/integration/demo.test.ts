import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { cliPath } from '../../fixtures/cluster.js';

const run = promisify(execFile);

async function demo(args: string[]): Promise<Record<string, any>> {
  const { stdout } = await run(process.execPath, [cliPath, 'demo', '--once', '--json', ...args], { timeout: 400_000, maxBuffer: 16 * 1024 * 1024 });
  const line = stdout.trim().split('\n').filter((l) => l.startsWith('{')).at(-1);
  expect(line, `demo printed no JSON report:\n${stdout.slice(-2000)}`).toBeTruthy();
  return JSON.parse(line!);
}

describe('the README demo (`npm start` = nimbus-ha demo)', () => {
  it('full head node: kill -9 of node a under load, fail-back, zero acknowledged rows, images and files lost', async () => {
    const r = await demo([]);
    expect(r.split_brain_observed).toBe(false);
    expect(r.failover.epoch_after).toBeGreaterThan(r.failover.epoch_before);
    expect(r.failover.client_gap_ms).toBeGreaterThan(0);
    expect(r.db.mode).toBe('sync');
    expect(r.db.acked).toBeGreaterThan(100);
    expect(r.db.lost).toBe(0);
    expect(r.images.uploaded).toBeGreaterThan(3);
    expect(r.images.mismatched).toBe(0);
    expect(r.files.changed).toBeGreaterThan(0);
    expect(r.files.missing_on_standby).toBe(0);
    expect(r.cloud.instances_survived).toBe(true);
    expect(r.failback).toMatchObject({ lost_rows: 0, lost_images: 0, lost_files: 0 });
  }, 420_000);

  it('basic cluster demo: failover, no preemption, switchover back, never two primaries', async () => {
    const r = await demo(['--basic']);
    expect(r.split_brain_observed).toBe(false);
    expect(r.failover.epoch_after).toBe(r.failover.epoch_before + 1);
    expect(r.rejoin.role).toBe('standby');
    expect(r.switchover.epoch_after).toBe(r.failover.epoch_after + 1);
    expect(r.failover.detect_ms).toBeGreaterThanOrEqual(400);
  }, 200_000);
});
