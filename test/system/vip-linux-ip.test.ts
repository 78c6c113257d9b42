import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { LinuxIpVip } from '../../adapters/vip/linux-ip.js';
import { HaError } from '../../src/errors.js';
import type { VipContext } from '../../src/ports.js';
import { createTopology, netnsUnavailableReason, type Topology } from '../helpers/netns.js';

const skipReason = netnsUnavailableReason();
if (skipReason) console.warn(`skipping linux-ip VIP system tests: ${skipReason}`);

const ctx: VipContext = { node: 'a', epoch: 1, role: 'primary', reason: 'test' };

async function expectHaError(p: Promise<unknown>, code: string): Promise<HaError> {
  const err = await p.then(
    () => null,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(HaError);
  expect((err as HaError).code).toBe(code);
  return err as HaError;
}

describe.skipIf(skipReason !== null)('LinuxIpVip in network namespaces', () => {
  let topo: Topology;
  let vipCidr: string;
  let vipAddr: string;
  let tmp: string;

  const vipOn = (node: string, extra: Partial<ConstructorParameters<typeof LinuxIpVip>[0]> = {}): LinuxIpVip =>
    new LinuxIpVip({
      address: vipCidr,
      interface: 'eth0',
      netns: topo.node(node).ns,
      arpCount: 2,
      arpIntervalMs: 50,
      ...extra,
    });

  const addressesOf = async (node: string): Promise<string> =>
    topo.run(node, 'ip', ['-4', '-o', 'addr', 'show', 'dev', 'eth0']);

  beforeAll(async () => {
    topo = await createTopology({ nodes: ['a', 'b', 'c'] });
    vipAddr = topo.spareAddress();
    vipCidr = `${vipAddr}/24`;
    tmp = await mkdtemp(join(tmpdir(), 'nha-vip-'));
  });

  // Each test starts with nobody holding the VIP, whatever an earlier failure left behind.
  beforeEach(async () => {
    for (const n of topo.nodes) await topo.exec(n.name, 'ip', ['addr', 'del', vipCidr, 'dev', 'eth0']);
  });

  afterAll(async () => {
    await topo?.cleanup();
    if (tmp) await rm(tmp, { recursive: true, force: true });
  });

  it('acquire adds the address, is idempotent, and release removes it (idempotent too)', async () => {
    const vip = vipOn('a', { label: 'vip' });
    expect(vip.describe()).toContain(vipCidr);
    expect(await vip.held()).toBe(false);
    await vip.acquire(ctx);
    expect(await vip.held()).toBe(true);
    expect(await addressesOf('a')).toMatch(new RegExp(`inet ${vipAddr.replace(/\./g, '\\.')}/24 .*eth0:vip`));
    await vip.acquire(ctx);
    expect(await vip.held()).toBe(true);
    await vip.release(ctx);
    expect(await vip.held()).toBe(false);
    expect(await addressesOf('a')).not.toContain(vipAddr);
    await vip.release(ctx);
    expect(await vip.held()).toBe(false);
    // The node's own address is untouched.
    expect(await addressesOf('a')).toContain(topo.node('a').address);
    await vip.close();
  });

  it('gratuitous ARP moves the neighbour entry of the VIP to the new holder', async () => {
    const a = vipOn('a');
    const b = vipOn('b');
    await a.acquire(ctx);
    await topo.run('c', 'ping', ['-c', '1', '-W', '2', vipAddr]);
    expect((await topo.neighbour('c', vipAddr))?.mac).toBe(topo.node('a').mac);

    await a.release(ctx);
    await b.acquire({ ...ctx, node: 'b', epoch: 2 });
    // No traffic from c: only b's announcement can have changed c's entry.
    let entry = await topo.neighbour('c', vipAddr);
    for (let i = 0; i < 20 && entry?.mac !== topo.node('b').mac; i++) {
      await new Promise((r) => setTimeout(r, 50));
      entry = await topo.neighbour('c', vipAddr);
    }
    expect(entry?.mac).toBe(topo.node('b').mac);
    await topo.run('c', 'ping', ['-c', '1', '-W', '2', vipAddr]);
    await b.release(ctx);
    await Promise.all([a.close(), b.close()]);
  });

  it('refuses with VIP_ADDRESS_IN_USE while another namespace holds the address, unless allowDuplicate', async () => {
    await topo.run('b', 'ip', ['addr', 'add', vipCidr, 'dev', 'eth0']);
    try {
      const a = vipOn('a');
      const err = await expectHaError(a.acquire(ctx), 'VIP_ADDRESS_IN_USE');
      expect(err.message).toContain(vipAddr);
      expect(await a.held()).toBe(false);

      const warnings: string[] = [];
      const forced = vipOn('a', { allowDuplicate: true, onWarning: (m) => warnings.push(m) });
      await forced.acquire(ctx);
      expect(await forced.held()).toBe(true);
      expect(warnings.join('\n')).toContain('allowDuplicate');
      await forced.release(ctx);

      // A takeover (typed flag, not the reason's words) skips the probe: the predecessor fenced or died.
      const taking = vipOn('a');
      await taking.acquire({ ...ctx, reason: 'failover', takeover: false }).then(
        () => expect.fail('a reason alone must not skip the probe'),
        (e: Error) => expect(e.message).toContain(vipAddr),
      );
      await taking.acquire({ ...ctx, reason: 'anything', takeover: true });
      expect(await taking.held()).toBe(true);
      await taking.release(ctx);
    } finally {
      await topo.exec('b', 'ip', ['addr', 'del', vipCidr, 'dev', 'eth0']);
    }
  });

  it('a missing interface gives VIP_FAILED naming the interface', async () => {
    const vip = vipOn('a', { interface: 'nosuch0' });
    const err = await expectHaError(vip.held(), 'VIP_FAILED');
    expect(err.message).toContain('nosuch0');
    await expectHaError(vip.acquire(ctx), 'VIP_FAILED');
    await vip.release(ctx); // nothing to give up: not an error
  });

  it('without CAP_NET_ADMIN the error says to run as root or use bind-proxy', async () => {
    // `ip` wrapped to run unprivileged inside node a's namespace.
    const wrapper = join(tmp, 'ip-unprivileged');
    await writeFile(
      wrapper,
      `#!/bin/sh\nexec ip netns exec ${topo.node('a').ns} setpriv --reuid=65534 --regid=65534 --clear-groups ip "$@"\n`,
    );
    await chmod(wrapper, 0o755);
    const vip = new LinuxIpVip({ address: vipCidr, interface: 'eth0', ipPath: wrapper, dad: false, arpCount: 0 });
    const err = await expectHaError(vip.acquire(ctx), 'VIP_NOT_PERMITTED');
    expect(err.message).toMatch(/root/);
    expect(err.message).toMatch(/bind-proxy/);
  });

  it('rejects invalid options with CONFIG_INVALID', () => {
    expect(() => new LinuxIpVip({ address: '10.199.0.1', interface: 'eth0' })).toThrow(/prefix length/);
    expect(() => new LinuxIpVip({ address: 'fd00::1/64', interface: 'eth0' })).toThrow(HaError);
  });
});
