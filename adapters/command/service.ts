import type { ProbeResult, ServiceController } from '../../src/ports.js';
import { HaError } from '../../src/errors.js';
import { runCommand } from './run.js';

/** A service controlled by shell commands: protect any service before a dedicated adapter exists. */
export class CommandService implements ServiceController {
  constructor(
    readonly name: string,
    private readonly cmd: { start: string; stop: string; probe: string },
    private readonly timeoutMs = 30_000,
  ) {}

  async start(): Promise<void> {
    const r = await runCommand(this.cmd.start, { timeoutMs: this.timeoutMs });
    if (r.code !== 0) throw new HaError('SERVICE_FAILED', `${this.name}: start command exited ${r.code}: ${r.stderr.trim().slice(0, 300)}`);
  }

  async stop(): Promise<void> {
    const r = await runCommand(this.cmd.stop, { timeoutMs: this.timeoutMs });
    if (r.code !== 0) throw new HaError('SERVICE_FAILED', `${this.name}: stop command exited ${r.code}: ${r.stderr.trim().slice(0, 300)}`);
  }

  async probe(timeoutMs: number): Promise<ProbeResult> {
    const t0 = performance.now();
    const r = await runCommand(this.cmd.probe, { timeoutMs });
    const latencyMs = performance.now() - t0;
    if (r.timedOut) return { ok: false, latencyMs, detail: `probe timed out after ${timeoutMs} ms` };
    return { ok: r.code === 0, latencyMs, detail: r.code === 0 ? 'ok' : `probe exited ${r.code}: ${r.stderr.trim().slice(0, 200)}` };
  }
}
