import { spawn } from 'node:child_process';
import { childEnv } from '../../src/ports.js';

export interface CommandResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

/**
 * Run a shell command with a timeout; on timeout the whole process group is killed, so a hung probe
 * or hook cannot leave children behind. Output is capped to keep memory bounded.
 */
export function runCommand(command: string, opts: { timeoutMs: number; env?: NodeJS.ProcessEnv; cwd?: string }): Promise<CommandResult> {
  return new Promise((resolve) => {
    const child = spawn('/bin/sh', ['-c', command], {
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: childEnv(opts.env),
      cwd: opts.cwd,
    });
    let stdout = '';
    let stderr = '';
    const cap = (s: string, add: Buffer) => (s.length > 64_000 ? s : s + add.toString());
    child.stdout.on('data', (b: Buffer) => (stdout = cap(stdout, b)));
    child.stderr.on('data', (b: Buffer) => (stderr = cap(stderr, b)));
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      try {
        if (child.pid) process.kill(-child.pid, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }, opts.timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      resolve({ code: 127, signal: null, stdout, stderr: stderr + err.message, timedOut });
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, timedOut });
    });
  });
}
