import type { ProbeResult, ServiceController } from '../../src/ports.js';
import { ProcessSupervisor, type ProcessSupervisorOptions } from '../nimbus/process-supervisor.js';

/** A foreground service run as a supervised process group (stop reaches its children). */
export class ProcessService implements ServiceController {
  private readonly sup: ProcessSupervisor;

  constructor(
    readonly name: string,
    opts: ProcessSupervisorOptions,
  ) {
    this.sup = new ProcessSupervisor(opts);
  }

  start(): Promise<void> {
    return this.sup.start();
  }

  stop(): Promise<void> {
    return this.sup.stop();
  }

  /** Liveness only; configure a real probe (http, tcp, ...) for health. */
  async probe(): Promise<ProbeResult> {
    const t0 = performance.now();
    const pid = await this.sup.pid();
    return { ok: pid !== null, latencyMs: performance.now() - t0, detail: pid !== null ? `running as pid ${pid}` : 'not running' };
  }
}
