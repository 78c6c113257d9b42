/**
 * Runs one service process in its own process group, so stop reaches its children too. Output goes
 * straight to a log file (not through pipes): the service must outlive a restart of the sidecar.
 */
import { spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { mkdir, open, readFile, rm, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { HaError } from '../../src/errors.js';
import { childEnv } from '../../src/ports.js';

export interface ProcessSupervisorOptions {
  /** argv of the service, e.g. `["node", "dist/fixtures/nimbus-vm-service/main.js", "--home", "/opt/nimbus"]`. */
  command: readonly string[];
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** Appends the service's stdout/stderr here; discarded when absent. */
  logFile?: string;
  /** Records the PID so a restarted sidecar still finds (and can stop) a service it started earlier. */
  pidFile?: string;
  /** Time between SIGTERM and SIGKILL. */
  stopTimeoutMs: number;
  /** A process that exits within this time after start is reported as a failed start. */
  startGraceMs: number;
}

function signalOk(target: number): boolean {
  try {
    process.kill(target, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The fields of /proc/PID/stat after the command name (the first is field 3, the state), or null (Linux only). */
function statFields(pid: number): string[] | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return null;
  }
}

/** A dead process not yet reaped by its parent still answers signal 0; /proc tells the truth (Linux). */
const isZombie = (pid: number): boolean => statFields(pid)?.[0] === 'Z';

/**
 * When a process started (clock ticks since boot: /proc/PID/stat field 22), or null where unknown (no
 * process, no /proc). With the PID it names one process for good: PIDs are reused, start times are not.
 */
const startTimeOf = (pid: number): string | null => statFields(pid)?.[19] ?? null;

/** Whether the service's main process lives (its helpers may outlive it; they do not make it healthy). */
const leaderAlive = (pid: number) => signalOk(pid) && !isZombie(pid);
/** Whether any process of the group lives. */
const groupAlive = (pid: number) => signalOk(-pid);

async function tail(file: string | undefined): Promise<string> {
  if (!file) return '';
  try {
    const fh = await open(file, 'r');
    try {
      const { size } = await fh.stat();
      const len = Math.min(size, 1000);
      const buf = Buffer.alloc(len);
      await fh.read(buf, 0, len, size - len);
      return buf.toString('utf8').trim().split('\n').slice(-3).join(' | ');
    } finally {
      await fh.close();
    }
  } catch {
    return '';
  }
}

export class ProcessSupervisor {
  /** Process group of the service we spawned (its leader's PID). */
  private groupId: number | null = null;
  /** Start time of that leader (startTimeOf), to tell it from a later process that got the same PID. */
  private groupStart: string | null = null;
  /** Set by the exit event of the process we spawned. */
  private groupLeaderExited = false;

  constructor(private readonly o: ProcessSupervisorOptions) {
    if (o.command.length === 0) throw new HaError('CONFIG_INVALID', 'process mode needs a command (argv array)');
  }

  /**
   * The last known process group: ours, or the one recorded in the PID file — unless its number now
   * belongs to another process. The kernel does not hand out a PID still in use as a process group id,
   * so while any process of our group lives, a process with the leader's PID is the leader itself; a
   * process with that PID and another start time means our group is gone and the number was reused
   * (by a shell, `timeout` or a daemon that leads a group of its own), and signalling the group would
   * hit someone else's processes.
   */
  private async knownGroup(): Promise<number | null> {
    let pid = this.groupId;
    let start = this.groupStart;
    if (pid === null) {
      if (!this.o.pidFile) return null;
      const [p, st] = (await readFile(this.o.pidFile, 'utf8').catch(() => '')).trim().split(/\s+/);
      pid = Number(p);
      start = st || null; // a PID file without a start time (older versions): the PID alone, as then
      if (!Number.isInteger(pid) || pid <= 1) return null;
    }
    if (start === null) return pid;
    const now = startTimeOf(pid);
    return now === null || now === start ? pid : null;
  }

  /** PID of the running service's main process (also its process group id), or null. */
  async pid(): Promise<number | null> {
    const pid = await this.knownGroup();
    if (pid !== null && pid === this.groupId && this.groupLeaderExited) return null;
    return pid !== null && leaderAlive(pid) ? pid : null;
  }

  async start(): Promise<void> {
    if ((await this.pid()) !== null) return;
    // Helpers of a service that died (e.g. killed by the OOM killer) may still hold its ports.
    const leftover = await this.knownGroup();
    if (leftover !== null && groupAlive(leftover)) {
      this.signal(leftover, 'SIGKILL');
      await this.waitGone(leftover, 5000);
    }
    let fd: number | 'ignore' = 'ignore';
    if (this.o.logFile) {
      await mkdir(dirname(this.o.logFile), { recursive: true });
      fd = openSync(this.o.logFile, 'a');
    }
    const [file, ...args] = this.o.command;
    const child = spawn(file, args, { cwd: this.o.cwd, env: this.o.env ?? childEnv(), detached: true, stdio: ['ignore', fd, fd] });
    if (typeof fd === 'number') closeSync(fd);
    this.groupId = child.pid ?? null;
    this.groupStart = child.pid !== undefined ? startTimeOf(child.pid) : null;
    this.groupLeaderExited = false;
    let exitCode: string | null = null;
    child.once('exit', (code, sig) => {
      exitCode = String(code ?? sig);
      if (this.groupId === child.pid) this.groupLeaderExited = true;
    });
    await new Promise<void>((resolve, reject) => {
      child.once('spawn', resolve);
      child.once('error', (err) => {
        reject(new HaError('SERVICE_FAILED', `cannot start \`${this.o.command.join(' ')}\`: ${err.message}; check the command and its path`));
      });
    });
    // Do not keep the sidecar's event loop alive for the service's sake.
    child.unref();
    if (this.o.pidFile && child.pid !== undefined) {
      await mkdir(dirname(this.o.pidFile), { recursive: true });
      await writeFile(this.o.pidFile, `${child.pid}${this.groupStart !== null ? ` ${this.groupStart}` : ''}\n`);
    }
    const deadline = Date.now() + this.o.startGraceMs;
    while (Date.now() < deadline && exitCode === null) await delay(50);
    if (exitCode !== null) {
      const out = await tail(this.o.logFile);
      throw new HaError(
        'SERVICE_FAILED',
        `\`${this.o.command.join(' ')}\` exited at once (${exitCode})${out ? `: ${out}` : ''}; check its configuration${this.o.logFile ? ` and ${this.o.logFile}` : ''}`,
      );
    }
  }

  /** SIGTERM to the process group, SIGKILL after stopTimeoutMs. Idempotent. */
  async stop(): Promise<void> {
    const known = await this.knownGroup();
    const pid = known !== null && groupAlive(known) ? known : null;
    if (pid !== null) {
      this.signal(pid, 'SIGTERM');
      if (!(await this.waitGone(pid, this.o.stopTimeoutMs))) {
        this.signal(pid, 'SIGKILL');
        if (!(await this.waitGone(pid, 5000))) {
          throw new HaError('SERVICE_FAILED', `process group ${pid} survived SIGKILL; check for processes stuck in the kernel (D state)`);
        }
      }
    }
    if (this.o.pidFile) await rm(this.o.pidFile, { force: true });
  }

  private signal(pid: number, sig: NodeJS.Signals): void {
    try {
      process.kill(-pid, sig);
    } catch {
      /* already gone */
    }
  }

  private async waitGone(pid: number, timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (!groupAlive(pid)) return true;
      await delay(50);
    }
    return !groupAlive(pid);
  }
}
