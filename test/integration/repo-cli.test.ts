/** `repo sync` command run in-process against two s3rver instances. */
import { Command } from 'commander';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { registerRepoCommands } from '../../src/cli/repo.js';
import { ACCESS, fillSmall, listing, RepoLab, SECRET } from './repo-helpers.js';

const lab = new RepoLab();
afterEach(() => lab.close());

async function run(args: string[]): Promise<string> {
  const program = new Command().exitOverride();
  registerRepoCommands(program);
  let out = '';
  const spy = vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    out += String(chunk);
    return true;
  });
  try {
    await program.parseAsync(['node', 'nimbus-ha', ...args]);
  } finally {
    spy.mockRestore();
  }
  return out;
}

describe('nimbus-ha repo sync', () => {
  it('dry-runs, then syncs, printing JSON', async () => {
    const a = await lab.repo();
    const b = await lab.repo();
    await fillSmall(a.store, 4);
    const from = `s3://${ACCESS}:${SECRET}@127.0.0.1:${a.cumulus.port}/Repo?signature=v2&multipart=false`;
    const to = `s3://${ACCESS}:${SECRET}@127.0.0.1:${b.cumulus.port}/Repo`;
    const dry = JSON.parse(await run(['repo', 'sync', '--from', from, '--to', to, '--dry-run', '--json']));
    expect(dry).toMatchObject({ dryRun: true, copied: 0, planned: { copy: 4, delete: 0 } });
    expect((await listing(b.store)).size).toBe(0);
    const real = JSON.parse(await run(['repo', 'sync', '--from', from, '--to', to, '--json']));
    expect(real).toMatchObject({ copied: 4, failed: 0 });
    const text = await run(['repo', 'sync', '--from', from, '--to', to]);
    expect(text).toMatch(/^copied 0 object\(s\).*unchanged 4, failed 0/);
  });

  it('fails with the store message on wrong credentials', async () => {
    const a = await lab.repo();
    const b = await lab.repo();
    const from = `s3://${ACCESS}:wrong@127.0.0.1:${a.cumulus.port}/Repo?signature=v2`;
    const to = `s3://${ACCESS}:${SECRET}@127.0.0.1:${b.cumulus.port}/Repo`;
    await expect(run(['repo', 'sync', '--from', from, '--to', to])).rejects.toMatchObject({ code: 'REPO_AUTH_FAILED' });
  });
});
