import { isIPv4 } from 'node:net';
import { z } from 'zod';

/**
 * The `vip: { kind: linux-ip, ... }` config section. Kept beside the adapter so the two cannot drift;
 * the config loader (or the CLI composition root) includes it in the `vip` union.
 */
export const linuxIpVipConfigSchema = z
  .object({
    kind: z.literal('linux-ip'),
    address: z.string().refine(isIpv4Cidr, { message: 'must be an IPv4 address with prefix length, e.g. 10.0.1.100/24' }).describe('the advertised address with prefix length, e.g. "10.0.1.100/24" (IPv4 only: takeover uses ARP)'),
    interface: z.string().min(1).max(15).describe('interface that carries the address, e.g. "eth0"'),
    label: z.string().min(1).max(15).optional().describe('address label ("eth0:vip"); a label not starting with the interface name gets it prefixed'),
    arpCount: z.number().int().min(0).max(20).default(3).describe('gratuitous ARPs sent after taking the address (the first at once, the rest arpIntervalMs apart)'),
    arpIntervalMs: z.number().int().min(10).max(10_000).default(250).describe('pause between gratuitous ARPs, in ms'),
    dad: z.boolean().default(true).describe('probe for another holder before taking the address (adds up to dadTimeoutMs to takeover)'),
    dadTimeoutMs: z.number().int().min(50).max(10_000).default(500).describe('how long the duplicate address probe waits for an answer, in ms (a holder answers within ms on a LAN)'),
    allowDuplicate: z.boolean().default(false).describe('take the address even when another host answers for it (the old primary may be alive but wedged)'),
    ipPath: z.string().min(1).default('ip').describe('path of the `ip` binary (iproute2)'),
    arpingPath: z.string().min(1).default('arping').describe("path of the `arping` binary (iputils-arping or Habets' arping, detected at first use)"),
    netns: z.string().min(1).optional().describe('network namespace to act in (`ip -n NS`); for tests and for sidecars that manage another namespace'),
  })
  .strict();

export type LinuxIpVipConfig = z.infer<typeof linuxIpVipConfigSchema>;

function isIpv4Cidr(value: string): boolean {
  const m = /^([^/]+)\/(\d{1,2})$/.exec(value);
  return !!m && isIPv4(m[1]) && Number(m[2]) >= 1 && Number(m[2]) <= 32;
}
