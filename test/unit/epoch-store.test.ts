import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { EPOCH_FORMAT, EpochStore } from '../../src/cluster/epoch-store.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
const fileIn = () => {
  const d = mkdtempSync(join(tmpdir(), 'nha-epoch-'));
  dirs.push(d);
  return join(d, 'epoch.json');
};

describe('epoch store on disk', () => {
  it('writes its format; reads a file of an older release (no format) as format 1', () => {
    const file = fileIn();
    writeFileSync(file, JSON.stringify({ epoch: 4, votedFor: { epoch: 4, node: 'a' }, maintenance: false }));
    const s = new EpochStore(file);
    expect(s.get()).toEqual({ epoch: 4, votedFor: { epoch: 4, node: 'a' }, maintenance: false, maintenanceVersion: 0, nodeMaintenance: false });
    s.update({ epoch: 5 });
    expect(JSON.parse(readFileSync(file, 'utf8'))).toMatchObject({ format: EPOCH_FORMAT, epoch: 5 });
    expect(new EpochStore(file).get().epoch).toBe(5);
  });

  it("keeps this node's own pause apart from the cluster-wide one, across a restart (an older release ignores it)", () => {
    const file = fileIn();
    const s = new EpochStore(file);
    s.update({ nodeMaintenance: true });
    expect(new EpochStore(file).get()).toMatchObject({ maintenance: false, nodeMaintenance: true });
    s.update({ nodeMaintenance: false, maintenance: true, maintenanceVersion: 1 });
    expect(new EpochStore(file).get()).toMatchObject({ maintenance: true, maintenanceVersion: 1, nodeMaintenance: false });
  });

  it.each([[EPOCH_FORMAT + 1], ['2'], [1.5]])('refuses format %j (a newer release wrote it) with a clear error instead of misreading it', (format) => {
    const file = fileIn();
    writeFileSync(file, JSON.stringify({ format, epoch: 9, votedFor: null, maintenance: false }));
    expect(() => new EpochStore(file)).toThrow(/written by a newer release of nimbus-ha; this release reads formats up to 1/);
  });

  it('refuses to lower the epoch, and names an unreadable file', () => {
    const file = fileIn();
    const s = new EpochStore(file);
    s.update({ epoch: 3 });
    expect(() => s.update({ epoch: 2 })).toThrow(/refusing to lower the epoch from 3 to 2/);
    writeFileSync(file, '{"epoch": -1}');
    expect(() => new EpochStore(file)).toThrow(/unreadable \(epoch is not a non-negative integer\)/);
  });
});
