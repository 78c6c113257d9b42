/** `repo quarantine list|merge` run in-process against two s3rver instances, including merge --to (into the primary's repository). */
import { randomBytes } from 'node:crypto';
import { Command } from 'commander';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { registerRepoCommands } from '../../src/cli/repo.js';
import { PRIMARY_MARKER_KEY } from '../../src/replication/repo/quarantine-keeper.js';
import { ACCESS, SECRET, RepoLab, listing, md5, putBytes, readBytes } from './repo-helpers.js';

const lab = new RepoLab();
afterEach(() => lab.close());

async function run(args: string[]): Promise<string> {
  const program = new Command().exitOverride();
  registerRepoCommands(program);
  let out = '';
  const spy = vi.spyOn(console, 'log').mockImplementation((...a: unknown[]) => {
    out += a.join(' ') + '\n';
  });
  try {
    await program.parseAsync(['node', 'nimbus-ha', ...args]);
  } finally {
    spy.mockRestore();
  }
  return out;
}

describe('nimbus-ha repo quarantine', () => {
  it('merge --to copies what the primary lacks into it, keeps the copies aside until the standby holds them, ignores the rejoin marker', async () => {
    const standby = await lab.repo();
    const primary = await lab.repo();
    const lonely = randomBytes(3000);
    const clash = randomBytes(3000);
    await putBytes(standby.store, 'nha-quarantine/ev1/VMS/u/lonely.img', lonely);
    await putBytes(standby.store, 'nha-quarantine/ev1/VMS/u/clash.img', clash);
    await putBytes(standby.store, PRIMARY_MARKER_KEY, Buffer.from('{}'));
    await putBytes(primary.store, 'VMS/u/clash.img', randomBytes(3000));
    const url = (port: number) => `s3://${ACCESS}:${SECRET}@127.0.0.1:${port}/Repo?signature=v2&multipart=false`;

    const list = JSON.parse(await run(['repo', 'quarantine', 'list', '--repo', url(standby.cumulus.port), '--json']));
    expect(list).toMatchObject({ quarantined: 2, mergeable: ['VMS/u/clash.img', 'VMS/u/lonely.img'] });

    const merged = JSON.parse(await run(['repo', 'quarantine', 'merge', '--repo', url(standby.cumulus.port), '--to', url(primary.cumulus.port), '--json']));
    expect(merged).toMatchObject({ quarantined: 2, done: ['VMS/u/lonely.img'], conflicts: [{ to: 'VMS/u/clash.img' }] });
    expect(md5(await readBytes(primary.store, 'VMS/u/lonely.img'))).toBe(md5(lonely));
    expect((await listing(standby.store)).has('nha-quarantine/ev1/VMS/u/lonely.img')).toBe(true);

    // The standby pulled it: a plain merge drops the redundant copy; the conflict and the marker stay.
    await putBytes(standby.store, 'VMS/u/lonely.img', lonely);
    await putBytes(standby.store, 'VMS/u/clash.img', await readBytes(primary.store, 'VMS/u/clash.img'));
    await run(['repo', 'quarantine', 'merge', '--repo', url(standby.cumulus.port)]);
    const left = [...(await listing(standby.store)).keys()].filter((k) => k.startsWith('nha-quarantine/')).sort();
    expect(left).toEqual(['nha-quarantine/ev1/VMS/u/clash.img', PRIMARY_MARKER_KEY]);
  });
});
