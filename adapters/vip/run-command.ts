import { execFile } from 'node:child_process';
import { childEnv } from '../../src/ports.js';

/** What a finished command left behind. `code` is null when the process was killed (timeout). */
export interface CommandResult {
  code: number | null;
  stdout: string;
  stderr: string;
  /** Set when the binary could not be started at all (ENOENT, EACCES). */
  spawnError?: string;
}

/**
 * Runs a command without a shell and never throws: VIP adapters turn exit codes and stderr into
 * HaErrors with operator-facing messages, which needs the raw outcome rather than an exception.
 */
export function runCommand(file: string, args: readonly string[], timeoutMs: number): Promise<CommandResult> {
  return new Promise((resolve) => {
    execFile(
      file,
      [...args],
      { timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: 4 * 1024 * 1024, encoding: 'utf8', env: childEnv() },
      (err, stdout, stderr) => {
        if (!err) {
          resolve({ code: 0, stdout, stderr });
          return;
        }
        const e = err as NodeJS.ErrnoException & { code?: number | string; killed?: boolean };
        if (typeof e.code === 'string') {
          resolve({ code: null, stdout: stdout ?? '', stderr: stderr ?? '', spawnError: `${file}: ${e.code}` });
          return;
        }
        resolve({ code: typeof e.code === 'number' ? e.code : null, stdout: stdout ?? '', stderr: stderr ?? '' });
      },
    );
  });
}

/** One line for error messages: the command and what it printed. */
export function describeFailure(file: string, args: readonly string[], r: CommandResult): string {
  const output = (r.spawnError ?? (r.stderr.trim() || r.stdout.trim())) || `exit code ${String(r.code)}`;
  return `\`${[file, ...args].join(' ')}\` failed: ${output.split('\n')[0]}`;
}
