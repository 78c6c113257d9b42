import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CommandVip } from '../../adapters/vip/command.js';

const dir = mkdtempSync(join(tmpdir(), 'nha-vip-cmd-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('command VIP (real shell scripts)', () => {
  it('runs the hooks with the move in the environment, takeover as a flag; a failing hook is VIP_FAILED', async () => {
    const out = join(dir, 'env');
    const dump = `printf '%s %s %s %s %s %s\\n' "$NHA_ACTION" "$NHA_NODE" "$NHA_EPOCH" "$NHA_ROLE" "$NHA_TAKEOVER" "$NHA_REASON" >> ${out}`;
    const vip = new CommandVip({ acquire: dump, release: dump, timeoutMs: 5_000 });
    await vip.acquire({ node: 'b', epoch: 7, role: 'primary', reason: 'failover', takeover: true });
    expect(await vip.held()).toBe(true);
    await vip.release({ node: 'b', epoch: 7, role: 'fenced', reason: 'not primary' });
    expect(await vip.held()).toBe(false);
    expect(readFileSync(out, 'utf8').trim().split('\n')).toEqual(['acquire b 7 primary 1 failover', 'release b 7 fenced 0 not primary']);

    const failing = new CommandVip({ acquire: 'echo no route >&2; exit 3', release: 'true', timeoutMs: 5_000 });
    await expect(failing.acquire({ node: 'a', epoch: 1, role: 'primary', reason: 'bootstrap' })).rejects.toMatchObject({ code: 'VIP_FAILED' });
    expect(await failing.held()).toBe(false);
  });
});
