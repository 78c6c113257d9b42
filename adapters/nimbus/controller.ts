/**
 * ServiceController for a Nimbus head node: starts and stops the VM service (through nimbusctl on a
 * real install, or as a supervised process group) and probes it through its EC2 API plus Cumulus.
 */
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import {
  assertNever,
  nimbusConfigSchema,
  s3Probe,
  type NimbusConfig,
  type NimbusConfigInput,
  type Probe,
  type ProbeResult,
  type ServiceController,
} from '../../src/ports.js';
import { HaError } from '../../src/errors.js';
import { describeFailure, runCommand } from '../vip/run-command.js';
import { ec2Probe, httpsReachableProbe } from './ec2-probe.js';
import { ProcessSupervisor } from './process-supervisor.js';

/** The config section (defaults may be omitted) plus programmatic extras. */
export type NimbusControllerOptions = NimbusConfigInput & {
  /** Name in events and /status (default `nimbus`). */
  name?: string;
  /** process mode: environment of the service (default: the sidecar's). */
  env?: NodeJS.ProcessEnv;
};

/** What the controller knows about the service without probing it. */
export interface NimbusServiceStatus {
  running: boolean;
  /** process mode: the service's process group id. */
  pid?: number;
  detail: string;
}

export class NimbusServiceController implements ServiceController {
  readonly name: string;
  private readonly supervisor: ProcessSupervisor | null;
  private readonly ec2: Probe;
  private readonly cumulus: Probe | null;
  private readonly wsrf: Probe | null;
  private readonly o: Omit<NimbusConfig, 'env'> & { env?: NodeJS.ProcessEnv };

  constructor(options: NimbusControllerOptions) {
    const { name, env, ...section } = options;
    const parsed = nimbusConfigSchema.safeParse(section);
    if (!parsed.success) {
      const issues = parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`);
      throw new HaError('CONFIG_INVALID', `invalid nimbus service settings: ${issues.join('; ')}`);
    }
    const o = { ...parsed.data, env };
    this.o = o;
    this.name = name ?? 'nimbus';
    this.supervisor =
      o.mode === 'process'
        ? new ProcessSupervisor({
            command: o.command ?? [],
            cwd: o.cwd,
            env: o.env,
            logFile: o.logFile,
            pidFile: o.pidFile,
            stopTimeoutMs: o.stopTimeoutMs,
            startGraceMs: o.startGraceMs,
          })
        : null;
    this.ec2 = ec2Probe({ url: o.ec2.url, credentials: o.ec2.credentials, signatureMethod: o.ec2.signatureMethod, tls: { caFile: o.ec2.caFile, serverName: o.ec2.serverName } });
    this.wsrf = o.wsrf ? httpsReachableProbe({ url: o.wsrf.url, tls: { caFile: o.wsrf.caFile, serverName: o.wsrf.serverName } }) : null;
    this.cumulus = o.cumulus
      ? s3Probe({
          endpoint: o.cumulus.url,
          bucket: o.cumulus.bucket,
          region: o.cumulus.region,
          accessKeyId: o.cumulus.credentials?.accessKeyId,
          secretAccessKey: o.cumulus.credentials?.secretAccessKey,
        })
      : null;
  }

  private nimbusctl(command: 'start' | 'stop' | 'status', timeoutMs: number) {
    const target = this.o.nimbusctlTarget === 'all' ? [] : [this.o.nimbusctlTarget];
    const file = join(this.o.home, 'bin', 'nimbusctl');
    const args = [...target, command];
    return runCommand(file, args, timeoutMs).then((r) => ({ r, file, args }));
  }

  async start(): Promise<void> {
    const mode = this.o.mode;
    switch (mode) {
      case 'process':
        return this.supervisor?.start();
      case 'nimbusctl': {
        const { r, file, args } = await this.nimbusctl('start', this.o.startTimeoutMs);
        if (r.code !== 0) throw new HaError('SERVICE_FAILED', `${describeFailure(file, args, r)}; see the Nimbus logs under ${this.o.home}/var`);
        return;
      }
      default:
        return assertNever(mode, 'nimbus mode');
    }
  }

  async stop(): Promise<void> {
    const mode = this.o.mode;
    switch (mode) {
      case 'process':
        return this.supervisor?.stop();
      case 'nimbusctl': {
        const { r, file, args } = await this.nimbusctl('stop', this.o.stopTimeoutMs);
        // Stopping a stopped service is not an error: accept a failed stop when status says it is down.
        if (r.code !== 0 && (await this.status()).running) {
          throw new HaError('SERVICE_FAILED', `${describeFailure(file, args, r)}; stop the Nimbus services by hand before failing over`);
        }
        return;
      }
      default:
        return assertNever(mode, 'nimbus mode');
    }
  }

  /** Whether the service runs, as the process table (process) or `nimbusctl status` (nimbusctl) says. */
  async status(): Promise<NimbusServiceStatus> {
    if (this.supervisor) {
      const pid = await this.supervisor.pid();
      return pid === null ? { running: false, detail: 'process not running' } : { running: true, pid, detail: `process group ${pid}` };
    }
    const { r } = await this.nimbusctl('status', 30_000);
    const line = (r.spawnError ?? (r.stdout.trim() || r.stderr.trim())).split('\n')[0] || `exit ${String(r.code)}`;
    return { running: r.code === 0, detail: `nimbusctl: ${line}` };
  }

  /** EC2 DescribeAvailabilityZones (signed), the WSRF frontend when configured, then HeadBucket on the repository, within timeoutMs. */
  async probe(timeoutMs: number): Promise<ProbeResult> {
    const started = performance.now();
    if (this.supervisor && (await this.supervisor.pid()) === null) {
      return { ok: false, latencyMs: 0, detail: `${this.name}: process not running` };
    }
    let ec2 = await this.ec2(timeoutMs);
    if (ec2.ok && this.wsrf) {
      const w = await this.wsrf(Math.max(1, timeoutMs - (performance.now() - started)));
      ec2 = w.ok ? { ...ec2, detail: `${ec2.detail}; WSRF ${w.detail}` } : { ...w, detail: `EC2 ok but WSRF failed: ${w.detail}` };
    }
    if (!ec2.ok || !this.cumulus) return ec2;
    const left = Math.max(1, timeoutMs - (performance.now() - started));
    const s3 = await this.cumulus(left);
    return {
      ok: s3.ok,
      latencyMs: Math.round((performance.now() - started) * 10) / 10,
      detail: s3.ok ? `${ec2.detail}; ${s3.detail}` : `EC2 ok but Cumulus failed: ${s3.detail}`,
    };
  }
}
