import { Command, Help } from 'commander';
import { describe, expect, it } from 'vitest';
import { LAZY_COMMANDS, registerLazyCommands, requestedCommand } from '../../src/cli/lazy-commands.js';

describe('commands loaded on demand', () => {
  it('each stub reads in --help as its real command does', async () => {
    const help = new Help();
    for (const c of LAZY_COMMANDS) {
      const real = new Command();
      (await c.register())(real);
      const stubbed = new Command();
      await registerLazyCommands(stubbed, ['node', 'main.js', 'status']);
      const r = real.commands.find((x) => x.name() === c.name)!;
      const s = stubbed.commands.find((x) => x.name() === c.name)!;
      expect(s.description(), c.name).toBe(r.description());
      expect(help.subcommandTerm(s), c.name).toBe(help.subcommandTerm(r));
    }
  });

  it('the command asked for gets its real module, the others a stub', async () => {
    const p = new Command();
    await registerLazyCommands(p, ['node', 'main.js', 'repo', 'sync']);
    expect(p.commands.find((x) => x.name() === 'repo')!.commands.map((x) => x.name())).toContain('sync');
    expect(p.commands.find((x) => x.name() === 'certs')!.commands).toHaveLength(0);
  });

  it('`help NAME` asks for NAME', () => {
    expect(requestedCommand(['node', 'm', 'help', 'repo'])).toBe('repo');
    expect(requestedCommand(['node', 'm', 'status'])).toBe('status');
    expect(requestedCommand(['node', 'm'])).toBeUndefined();
  });
});
