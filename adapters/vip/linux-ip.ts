import type { z } from 'zod';
import { HaError } from '../../src/errors.js';
import { linuxIpVipConfigSchema, type LinuxIpVipConfig, type Vip, type VipContext } from '../../src/ports.js';
import { Arping } from './arp.js';
import { describeFailure, runCommand, type CommandResult } from './run-command.js';

export { linuxIpVipConfigSchema, type LinuxIpVipConfig } from '../../src/ports.js';

/** Options of LinuxIpVip: the config section (defaults optional) plus hooks the agent provides. */
export type LinuxIpVipOptions = Omit<z.input<typeof linuxIpVipConfigSchema>, 'kind'> & {
  /** Told about notable but non-fatal things (duplicate taken over on purpose, late ARP failures). */
  onWarning?: (message: string, details: Record<string, unknown>) => void;
};

const IP_TIMEOUT_MS = 10_000;

interface IpAddrJson {
  ifname?: string;
  addr_info?: Array<{ family?: string; local?: string; prefixlen?: number; label?: string }>;
}

/**
 * The advertised address as a secondary IPv4 address on a Linux interface (iproute2), announced with
 * gratuitous ARP so switches and neighbours move it to this host at once. Needs CAP_NET_ADMIN.
 */
/** How long acquire waits for the first gratuitous ARP before letting it finish in the background. */
const ANNOUNCE_SETTLE_MS = 100;

export class LinuxIpVip implements Vip {
  readonly config: Readonly<LinuxIpVipConfig>;
  private readonly ip: string;
  private readonly prefixLen: number;
  private readonly arping: Arping;
  private readonly onWarning: LinuxIpVipOptions['onWarning'];
  /** Bumped by release/close so a pending gratuitous-ARP burst stops announcing a released address. */
  private announceGeneration = 0;
  private pendingTimer: NodeJS.Timeout | null = null;
  private firstAnnouncement: Promise<void> = Promise.resolve();

  constructor(options: LinuxIpVipOptions) {
    const { onWarning, ...rest } = options;
    const parsed = linuxIpVipConfigSchema.safeParse({ kind: 'linux-ip', ...rest });
    if (!parsed.success) {
      const issues = parsed.error.issues.map((i) => `vip.${i.path.join('.')}: ${i.message}`).join('; ');
      throw new HaError('CONFIG_INVALID', `invalid linux-ip VIP options: ${issues}`);
    }
    this.config = Object.freeze(parsed.data);
    const [ip, prefix] = this.config.address.split('/');
    this.ip = ip;
    this.prefixLen = Number(prefix);
    this.onWarning = onWarning;
    this.arping = new Arping({
      arpingPath: this.config.arpingPath,
      ipPath: this.config.ipPath,
      netns: this.config.netns,
      interface: this.config.interface,
      address: this.ip,
    });
  }

  describe(): string {
    const ns = this.config.netns ? ` (netns ${this.config.netns})` : '';
    return `${this.config.address} on ${this.config.interface}${ns}`;
  }

  async acquire(ctx: VipContext): Promise<void> {
    if (await this.held()) {
      // Already ours (agent restart, reconcile): re-announce in case a neighbour still points elsewhere.
      this.startAnnouncing();
      await this.firstAnnouncementSent();
      return;
    }
    // On a takeover the previous holder has fenced (released) or died; a dead sidecar's host may still
    // answer ARP for the address, which must not block the takeover. Probe only when taking the address
    // without a known predecessor (bootstrap, reconciliation).
    const takeover = ctx.takeover === true;
    if (this.config.dad && !takeover && (await this.arping.isInUse(this.config.dadTimeoutMs))) {
      if (!this.config.allowDuplicate) {
        throw new HaError(
          'VIP_ADDRESS_IN_USE',
          `${this.ip} is answered by another host on ${this.config.interface}: the old primary may still hold it. ` +
            `Remove it there (\`nimbus-ha vip release\` or \`ip addr del ${this.config.address} dev IF\`), ` +
            `or set vip.allowDuplicate: true to take it over anyway`,
          { address: this.config.address, interface: this.config.interface, node: ctx.node, epoch: ctx.epoch },
        );
      }
      this.onWarning?.(`taking ${this.ip} although another host answers for it (vip.allowDuplicate)`, {
        address: this.config.address,
        epoch: ctx.epoch,
      });
    }
    const args = ['addr', 'add', this.config.address, 'dev', this.config.interface];
    if (this.config.label) args.push('label', this.fullLabel());
    const r = await this.ipCmd(args);
    if (r.code !== 0 && !/File exists/i.test(r.stderr)) this.fail('add', args, r);
    this.startAnnouncing();
    await this.firstAnnouncementSent();
  }

  /**
   * iputils arping sends at once but exits only after its interval (about 1 s); waiting for the exit
   * would hold the new primary's decision loop for that long. A failure to start (missing binary,
   * permissions) shows within the first moments, so wait that long and let the rest finish behind.
   */
  private async firstAnnouncementSent(): Promise<void> {
    const first = this.firstAnnouncement;
    if (!first) return;
    let settled = false;
    const watched = first.then(
      () => {
        settled = true;
      },
      (err: unknown) => {
        settled = true;
        throw err;
      },
    );
    watched.catch((err: unknown) => {
      this.onWarning?.(`gratuitous ARP failed: ${(err as Error).message}`, { address: this.config.address });
    });
    await Promise.race([watched, new Promise((r) => setTimeout(r, ANNOUNCE_SETTLE_MS))]);
    if (settled) await watched;
  }

  async release(_ctx: VipContext): Promise<void> {
    this.stopAnnouncing();
    const args = ['addr', 'del', this.config.address, 'dev', this.config.interface];
    const r = await this.ipCmd(args);
    if (r.code === 0) return;
    // Not present (EADDRNOTAVAIL) or the interface is gone: either way this host does not hold it.
    if (/Cannot assign requested address|Address not found|does not exist|Cannot find device/i.test(r.stderr)) return;
    this.fail('remove', args, r);
  }

  async held(): Promise<boolean> {
    const args = ['-j', 'addr', 'show', 'dev', this.config.interface];
    const r = await this.ipCmd(args);
    if (r.code !== 0) this.fail('read', args, r);
    let parsed: IpAddrJson[];
    try {
      parsed = JSON.parse(r.stdout || '[]') as IpAddrJson[];
    } catch {
      throw new HaError('VIP_FAILED', `cannot parse \`ip -j addr show\` output for ${this.config.interface}`);
    }
    return parsed.some((link) => (link.addr_info ?? []).some((a) => a.family === 'inet' && a.local === this.ip));
  }

  /** Stops pending announcements; the address stays on the interface (the agent releases on shutdown). */
  async close(): Promise<void> {
    this.stopAnnouncing();
  }

  /** First gratuitous ARP now (awaited by acquire), the rest in the background, cancelled by release. */
  private startAnnouncing(): void {
    this.stopAnnouncing();
    const generation = this.announceGeneration;
    const count = this.config.arpCount;
    if (count === 0) {
      this.firstAnnouncement = Promise.resolve();
      return;
    }
    const sendRest = (left: number): void => {
      if (left <= 0 || generation !== this.announceGeneration) return;
      this.pendingTimer = setTimeout(() => {
        this.pendingTimer = null;
        if (generation !== this.announceGeneration) return;
        this.arping.announce().then(
          () => sendRest(left - 1),
          (err: unknown) => this.onWarning?.(`gratuitous ARP failed: ${(err as Error).message}`, { address: this.ip }),
        );
      }, this.config.arpIntervalMs);
      this.pendingTimer.unref();
    };
    this.firstAnnouncement = this.arping.announce().then(() => sendRest(count - 1));
  }

  private stopAnnouncing(): void {
    this.announceGeneration += 1;
    if (this.pendingTimer) clearTimeout(this.pendingTimer);
    this.pendingTimer = null;
  }

  private fullLabel(): string {
    const label = this.config.label ?? '';
    return label.startsWith(this.config.interface) ? label : `${this.config.interface}:${label}`;
  }

  private ipCmd(args: string[]): Promise<CommandResult> {
    const full = this.config.netns ? ['-n', this.config.netns, ...args] : args;
    return runCommand(this.config.ipPath, full, IP_TIMEOUT_MS);
  }

  private fail(what: 'add' | 'remove' | 'read', args: string[], r: CommandResult): never {
    const iface = this.config.interface;
    const detail = describeFailure(this.config.ipPath, args, r);
    if (r.spawnError) {
      throw new HaError('VIP_FAILED', `cannot run "${this.config.ipPath}" (${r.spawnError}): install iproute2 or set vip.ipPath`);
    }
    if (/Operation not permitted|Permission denied/i.test(r.stderr)) {
      throw new HaError(
        'VIP_NOT_PERMITTED',
        `cannot ${what} ${this.config.address} on ${iface}: not permitted. Run nimbus-ha as root (or with ` +
          `CAP_NET_ADMIN), or use vip kind bind-proxy, which works unprivileged. (${detail})`,
      );
    }
    if (/does not exist|Cannot find device/i.test(r.stderr)) {
      throw new HaError('VIP_FAILED', `interface "${iface}" does not exist${this.config.netns ? ` in netns ${this.config.netns}` : ''}: check vip.interface (${detail})`);
    }
    throw new HaError('VIP_FAILED', `cannot ${what} ${this.config.address} on ${iface}: ${detail}`);
  }
}
