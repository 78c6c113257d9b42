/**
 * The demo's Ctrl-C: stop the whole stack and say what was stopped and removed, checked rather than
 * assumed (processes still alive afterwards and a directory that is still there are reported).
 */
import { existsSync, readFileSync, readdirSync } from 'node:fs';

/** Process ids of every descendant of `root` (Linux /proc; empty elsewhere). */
export function descendants(root: number): number[] {
  const parent = new Map<number, number>();
  try {
    for (const d of readdirSync('/proc')) {
      if (!/^\d+$/.test(d)) continue;
      try {
        const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
        // pid (comm) state ppid ...: comm may hold spaces and parentheses, so read after the last ')'.
        const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
        parent.set(Number(d), ppid);
      } catch {
        /* exited meanwhile */
      }
    }
  } catch {
    return [];
  }
  const out: number[] = [];
  const walk = (p: number) => {
    for (const [pid, pp] of parent) if (pp === p && !out.includes(pid)) (out.push(pid), walk(pid));
  };
  walk(root);
  return out;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export interface DemoStop {
  /** What the stack is made of, for the message ("witness, sidecars a and b, ..."). */
  what: string;
  dir: string;
  /** Whether the demo created the directory (and so removes it). */
  ownsDir: boolean;
  /** Extra processes that are not descendants of this one (e.g. services that outlive their sidecar), with their descendants. */
  extraPids?: () => number[];
  /** Stops everything (idempotent: the same promise on every call). */
  cleanup: () => Promise<void>;
  /** Called first (stop narrating). */
  before?: () => void;
}

/**
 * Takes over SIGINT and SIGTERM (replacing the handlers that would stop the stack and exit silently):
 * prints what it stops, runs the cleanup, waits for the processes to go, prints what it found stopped
 * and removed, and exits (130 on SIGINT, 143 on SIGTERM).
 */
export function sayOnStop(s: DemoStop, print: (line: string) => void = (l) => console.log(l)): void {
  let stopping = false;
  const handler = (sig: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    s.before?.();
    const extra = (s.extraPids?.() ?? []).filter(alive);
    const pids = [...new Set([...descendants(process.pid), ...extra, ...extra.flatMap(descendants)])];
    print(`\n${sig === 'SIGINT' ? 'Ctrl-C' : sig}: stopping the demo: ${s.what} (${pids.length} processes)`);
    void (async () => {
      try {
        await s.cleanup();
      } catch (err) {
        print(`cleanup failed: ${(err as Error).message}`);
      }
      // Killed processes take a moment to be reaped (PostgreSQL's backends follow their postmaster).
      for (let i = 0; i < 30 && pids.some(alive); i++) await new Promise((r) => setTimeout(r, 100));
      const left = pids.filter(alive);
      const procs = left.length ? `${pids.length - left.length} of ${pids.length} processes stopped, still running: ${left.join(' ')}` : `all ${pids.length} processes stopped`;
      const dir = !s.ownsDir ? `${s.dir} kept (given with --dir)` : existsSync(s.dir) ? `could not remove ${s.dir}` : `removed ${s.dir} (databases, repositories, config trees, logs)`;
      print(`stopped: ${procs}; ${dir}`);
      process.exit(sig === 'SIGINT' ? 130 : 143);
    })();
  };
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.removeAllListeners(sig);
    process.on(sig, handler);
  }
}
