import { HaError } from '../../src/errors.js';
import { describeFailure, runCommand, type CommandResult } from './run-command.js';

/**
 * Two incompatible programs are installed as `arping`: iputils' (Debian `iputils-arping`) and Thomas
 * Habets' (Debian `arping`). Their flags differ (`-I dev` vs `-i dev`, `-D` vs `-0`), so the flavour is
 * detected once from the program's own version/help text.
 */
export type ArpingFlavour = 'iputils' | 'habets';

/** How to reach the arping binary, optionally inside a network namespace (`ip netns exec NS arping`). */
export interface ArpingTarget {
  arpingPath: string;
  ipPath: string;
  netns?: string;
  interface: string;
  /** The address without prefix length. */
  address: string;
}

/** Classifies `arping -V` / `arping --help` output; null when neither flavour is recognised. */
export function classifyArping(output: string): ArpingFlavour | null {
  if (/iputils/i.test(output)) return 'iputils';
  if (/habets/i.test(output)) return 'habets';
  return null;
}

/** argv (after the binary) for one gratuitous ARP: an unsolicited request announcing our own address. */
export function gratuitousArgs(flavour: ArpingFlavour, iface: string, address: string): string[] {
  switch (flavour) {
    case 'iputils':
      return ['-q', '-U', '-c', '1', '-I', iface, address];
    case 'habets':
      return ['-q', '-U', '-c', '1', '-i', iface, '-S', address, address];
  }
}

/** argv for duplicate address detection: probes from 0.0.0.0 that only another holder answers. */
export function duplicateProbeArgs(flavour: ArpingFlavour, iface: string, address: string, timeoutMs: number): string[] {
  const waitSeconds = String(Math.max(1, Math.ceil(timeoutMs / 1000)));
  switch (flavour) {
    case 'iputils':
      return ['-D', '-c', '2', '-w', waitSeconds, '-I', iface, address];
    case 'habets':
      return ['-0', '-c', '2', '-w', waitSeconds, '-i', iface, address];
  }
}

/**
 * Reads a duplicate probe's outcome. iputils -D exits 0 when nobody answered and 1 with
 * "Received N response(s)" when someone holds the address (it stops at the first reply); Habets'
 * exits 0 when it got replies. A probe killed at our own deadline (code null) without a reply means
 * nobody answered in time: arping's own -w only counts whole seconds, too coarse for a takeover.
 * Anything else (missing interface, bad flags) is an error, not an answer.
 */
export function interpretDuplicateProbe(flavour: ArpingFlavour, r: CommandResult): 'free' | 'in-use' | 'error' {
  if (r.spawnError) return 'error';
  const text = `${r.stdout}\n${r.stderr}`;
  const received = /Received\s+(\d+)\s+response/i.exec(text);
  const replied = (received !== null && Number(received[1]) > 0) || /reply from|bytes from/i.test(text);
  if (r.code === null) return replied ? 'in-use' : 'free';
  if (flavour === 'iputils') {
    if (r.code === 0) return 'free';
    if (r.code === 1 && replied) return 'in-use';
    return 'error';
  }
  if (r.code === 0) return 'in-use';
  if (r.code === 1 && !/error|cannot|invalid|usage/i.test(text)) return 'free';
  return 'error';
}

/** Runs arping for one VIP, inside a namespace when asked. */
export class Arping {
  private flavour: ArpingFlavour | null = null;

  constructor(private readonly target: ArpingTarget) {}

  private command(args: string[]): [string, string[]] {
    const t = this.target;
    return t.netns ? [t.ipPath, ['netns', 'exec', t.netns, t.arpingPath, ...args]] : [t.arpingPath, args];
  }

  private async run(args: string[], timeoutMs: number): Promise<CommandResult & { argv: [string, string[]] }> {
    const argv = this.command(args);
    return { ...(await runCommand(argv[0], argv[1], timeoutMs)), argv };
  }

  /** Detects (once) which arping is installed; fails with a message naming the packages to install. */
  async detect(): Promise<ArpingFlavour> {
    if (this.flavour) return this.flavour;
    for (const probe of [['-V'], ['--help']]) {
      const r = await this.run(probe, 5_000);
      if (r.spawnError) break;
      const f = classifyArping(`${r.stdout}\n${r.stderr}`);
      if (f) return (this.flavour = f);
    }
    throw new HaError(
      'VIP_FAILED',
      `cannot use arping at "${this.target.arpingPath}" for gratuitous ARP: install iputils-arping (or arping) ` +
        `or set vip.arpingPath`,
    );
  }

  /** Sends one gratuitous ARP so neighbours move the address to this host's MAC. */
  async announce(): Promise<void> {
    const flavour = await this.detect();
    const { interface: iface, address } = this.target;
    const r = await this.run(gratuitousArgs(flavour, iface, address), 5_000);
    if (r.code !== 0) {
      throw new HaError('VIP_FAILED', `gratuitous ARP for ${address} on ${iface}: ${describeFailure(r.argv[0], r.argv[1], r)}`);
    }
  }

  /** Whether another host answers ARP for the address within timeoutMs (duplicate address detection). */
  async isInUse(timeoutMs: number): Promise<boolean> {
    const flavour = await this.detect();
    const { interface: iface, address } = this.target;
    const r = await this.run(duplicateProbeArgs(flavour, iface, address, timeoutMs), timeoutMs);
    const verdict = interpretDuplicateProbe(flavour, r);
    if (verdict === 'error') {
      throw new HaError(
        'VIP_FAILED',
        `duplicate address check for ${address} on ${iface}: ${describeFailure(r.argv[0], r.argv[1], r)}`,
      );
    }
    return verdict === 'in-use';
  }
}
