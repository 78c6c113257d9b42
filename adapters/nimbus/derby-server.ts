/**
 * A long-lived NimbusDerbyTool JVM (`serve` mode) that boots and checks Derby copies on request: a fresh
 * JVM costs about 1.2 s before Derby has booted anything (measured here: 1.1-1.3 s for a boot of a
 * small database, against 0.1-0.2 s in a JVM that has loaded Derby already). One request at a time; a
 * request past its timeout kills the JVM (the next one starts another); idle for `idleMs`, it exits.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createInterface } from 'node:readline';
import type { DerbyCheckResult, DerbyTool } from './derby-tool.js';

export class DerbyServer {
  private child: ChildProcessWithoutNullStreams | null = null;
  private waiting: ((line: string | null) => void) | null = null;
  private queue: Promise<unknown> = Promise.resolve();
  private idle: NodeJS.Timeout | null = null;
  private stderr = '';
  /** Requests served by the current JVM (it is replaced after `maxRequests`, so Derby's caches never grow for long). */
  private served = 0;

  constructor(
    private readonly tool: DerbyTool,
    private readonly o: { idleMs?: number; maxRequests?: number } = {},
  ) {}

  /** Boots every database (crash recovery) and shuts it down. */
  boot(dbs: string[], timeoutMs = 120_000): Promise<DerbyCheckResult> {
    return this.request('boot', dbs, timeoutMs);
  }

  /** Boots every database and runs SYSCS_CHECK_TABLE on every table. */
  check(dbs: string[], timeoutMs = 120_000): Promise<DerbyCheckResult> {
    return this.request('check', dbs, timeoutMs);
  }

  private request(mode: 'boot' | 'check', dbs: string[], timeoutMs: number): Promise<DerbyCheckResult> {
    if (dbs.some((d) => /[\t\n\r]/.test(d))) return Promise.resolve({ ok: false, error: 'database path with a tab or newline' });
    const run = this.queue.then(() => this.send(`${[mode, ...dbs].join('\t')}\n`, timeoutMs));
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async start(): Promise<ChildProcessWithoutNullStreams> {
    const c = await this.tool.command(['serve']);
    // Long-lived: let the JIT finish its work (the one-shot tools stop at C1), and give recovery's redo
    // a page cache of 40 MB instead of Derby's 4 MB so it does not write pages out before the end.
    const args = c.args.filter((a) => a !== '-XX:TieredStopAtLevel=1');
    args.splice(args.indexOf('-cp'), 0, '-Dderby.storage.pageCacheSize=10000');
    const child = spawn(c.cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    this.stderr = '';
    this.served = 0;
    createInterface({ input: child.stdout }).on('error', () => undefined).on('line', (line) => {
      const w = this.waiting;
      this.waiting = null;
      w?.(line);
    });
    child.stderr.on('data', (d: Buffer) => (this.stderr = (this.stderr + d.toString()).slice(-4000)));
    child.stdin.on('error', () => undefined);
    child.once('exit', () => {
      if (this.child === child) this.child = null;
      const w = this.waiting;
      this.waiting = null;
      w?.(null);
    });
    child.once('error', () => undefined);
    return child;
  }

  private async send(line: string, timeoutMs: number): Promise<DerbyCheckResult> {
    if (this.idle) clearTimeout(this.idle);
    if (this.child && this.served >= (this.o.maxRequests ?? 1000)) await this.close();
    if (!this.child) this.child = await this.start();
    const child = this.child;
    this.served++;
    const answer = await new Promise<string | null>((resolve) => {
      const timer = setTimeout(() => {
        this.waiting = null;
        child.kill('SIGKILL');
        resolve(null);
      }, timeoutMs);
      this.waiting = (l) => {
        clearTimeout(timer);
        resolve(l);
      };
      child.stdin.write(line);
    });
    this.idle = setTimeout(() => void this.close(), this.o.idleMs ?? 60_000);
    this.idle.unref?.();
    if (answer === null) {
      if (this.child === child) this.child = null;
      return { ok: false, error: `the Derby verifier JVM exited or timed out: ${this.stderr.trim().slice(-1000)}` };
    }
    try {
      return JSON.parse(answer) as DerbyCheckResult;
    } catch {
      return { ok: false, error: `unreadable answer from the Derby verifier: ${answer.slice(0, 500)}` };
    }
  }

  /** Ends the JVM (it exits at the end of its input) and waits for it. */
  async close(): Promise<void> {
    if (this.idle) clearTimeout(this.idle);
    this.idle = null;
    const child = this.child;
    this.child = null;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.stdin.end();
    const t = setTimeout(() => child.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(t);
  }
}
