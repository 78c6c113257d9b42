import { describe, expect, it } from 'vitest';
import { classifyArping, duplicateProbeArgs, gratuitousArgs, interpretDuplicateProbe } from '../../adapters/vip/arp.js';
import { linuxIpVipConfigSchema } from '../../src/config/vip-linux-ip.js';

describe('arping flavours', () => {
  it('recognises iputils and Habets from their version/help text', () => {
    expect(classifyArping('arping from iputils 20221126\nlibcap: yes')).toBe('iputils');
    expect(classifyArping('ARPing 2.21, by Thomas Habets <thomas@habets.se>\nusage: arping [ -0aAbBdDeFhpqrRuUv ]')).toBe('habets');
    expect(classifyArping('busybox arping')).toBeNull();
  });

  it('builds flavour-specific argv for gratuitous ARP and duplicate probes', () => {
    expect(gratuitousArgs('iputils', 'eth0', '10.0.0.9')).toEqual(['-q', '-U', '-c', '1', '-I', 'eth0', '10.0.0.9']);
    expect(gratuitousArgs('habets', 'eth0', '10.0.0.9')).toEqual(['-q', '-U', '-c', '1', '-i', 'eth0', '-S', '10.0.0.9', '10.0.0.9']);
    expect(duplicateProbeArgs('iputils', 'eth0', '10.0.0.9', 1500)).toEqual(['-D', '-c', '2', '-w', '2', '-I', 'eth0', '10.0.0.9']);
    expect(duplicateProbeArgs('habets', 'eth0', '10.0.0.9', 200)).toEqual(['-0', '-c', '2', '-w', '1', '-i', 'eth0', '10.0.0.9']);
  });

  it('reads duplicate-probe outcomes, treating unexplained failures as errors', () => {
    const r = (code: number | null, stdout: string, stderr = '') => ({ code, stdout, stderr });
    expect(interpretDuplicateProbe('iputils', r(0, 'Sent 2 probes (2 broadcast(s))\nReceived 0 response(s)'))).toBe('free');
    expect(interpretDuplicateProbe('iputils', r(1, 'Unicast reply from 10.0.0.9 [AA:BB]\nReceived 1 response(s)'))).toBe('in-use');
    expect(interpretDuplicateProbe('iputils', r(2, '', 'arping: Device eth9 not available.'))).toBe('error');
    expect(interpretDuplicateProbe('habets', r(0, '42 bytes from aa:bb (10.0.0.9)'))).toBe('in-use');
    expect(interpretDuplicateProbe('habets', r(1, '--- 10.0.0.9 statistics ---\n2 packets transmitted, 0 packets received'))).toBe('free');
    expect(interpretDuplicateProbe('iputils', { ...r(null, ''), spawnError: 'arping: ENOENT' })).toBe('error');
    // Killed at our deadline: free unless a reply was already printed.
    expect(interpretDuplicateProbe('iputils', r(null, 'ARPING 10.0.0.9 from 0.0.0.0 eth0'))).toBe('free');
    expect(interpretDuplicateProbe('iputils', r(null, 'Unicast reply from 10.0.0.9 [AA:BB]  0.6ms'))).toBe('in-use');
  });
});

describe('linux-ip VIP config', () => {
  it('fills defaults and rejects unknown keys and non-CIDR addresses', () => {
    const c = linuxIpVipConfigSchema.parse({ kind: 'linux-ip', address: '10.0.1.100/24', interface: 'eth0' });
    expect(c).toMatchObject({ arpCount: 3, dad: true, allowDuplicate: false, ipPath: 'ip', arpingPath: 'arping' });
    expect(linuxIpVipConfigSchema.safeParse({ kind: 'linux-ip', address: '10.0.1.100', interface: 'eth0' }).success).toBe(false);
    expect(linuxIpVipConfigSchema.safeParse({ kind: 'linux-ip', address: '10.0.1.100/24', interface: 'eth0', bogus: 1 }).success).toBe(false);
  });
});
