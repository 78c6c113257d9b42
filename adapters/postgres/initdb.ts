/**
 * initdb for the embedded mode: a new data directory (or a template to copy) made as the server's OS
 * user, with the superuser's password handed over in a file that is removed at once.
 */
import { mkdir, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { HaError } from '../../src/errors.js';
import { writeOwned } from './conf.js';
import { chownFor, embeddedBinDir, redact, resolveOsUser, run, type OsUser } from './proc.js';

/** Give `dir` and everything below it to the server's OS user (nothing to do without one). */
export async function chownTree(dir: string, user: OsUser | null): Promise<void> {
  if (!user) return;
  await chownFor(dir, user);
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) await chownTree(p, user);
    else await chownFor(p, user);
  }
}

export async function initdb(bin: string, dataDir: string, superuser: string, password: string, walSegMb: number, user: OsUser | null, secrets: string[]): Promise<void> {
  const pwfile = join(dataDir, '..', `.nha-pw-${process.pid}-${Date.now()}`);
  await writeOwned(pwfile, `${password}\n`, user);
  try {
    const r = await run(
      join(bin, 'initdb'),
      ['-D', dataDir, '-U', superuser, `--pwfile=${pwfile}`, '-A', 'scram-sha-256', '-E', 'UTF8', '--locale=C', `--wal-segsize=${walSegMb}`],
      { user, timeoutMs: 300_000 },
    );
    if (r.code !== 0) throw new HaError('DB_FAILED', `initdb failed: ${redact(r.stderr || r.stdout, secrets).trim()}`);
  } finally {
    await rm(pwfile, { force: true });
  }
}

/** Exposed for tests and the CLI: initdb into `dir` as the server user (for a template to copy). */
export async function initTemplate(dir: string, opts: { superuser: string; password: string; walSegmentSizeMb: number; osUser?: string; binDir?: string }): Promise<void> {
  const user = await resolveOsUser(opts.osUser ?? 'postgres');
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await chownFor(dir, user);
  await initdb(opts.binDir ?? embeddedBinDir(), dir, opts.superuser, opts.password, opts.walSegmentSizeMb, user, [opts.password]);
}
