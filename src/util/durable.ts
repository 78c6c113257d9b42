import { randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, mkdirSync, openSync, renameSync, writeSync } from 'node:fs';
import { mkdir, open, rename } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

/**
 * Write JSON so that a crash leaves either the old or the new content: temp file, fsync, rename,
 * fsync of the directory. Synchronous on purpose: callers must not act before the state is durable.
 */
export function writeJsonDurable(file: string, value: unknown): void {
  mkdirSync(dirname(file), { recursive: true });
  const tmp = `${file}.tmp`;
  const fd = openSync(tmp, 'w', 0o600);
  try {
    writeSync(fd, JSON.stringify(value) + '\n');
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, file);
  const dfd = openSync(dirname(file), 'r');
  try {
    fsyncSync(dfd);
  } finally {
    closeSync(dfd);
  }
}

/** fsync a directory so a rename in it survives a crash. */
export async function syncDir(dir: string): Promise<void> {
  let fh;
  try {
    fh = await open(dir, 'r');
    await fh.sync();
  } catch {
    // Some file systems refuse fsync on directories; the rename itself has happened.
  } finally {
    await fh?.close();
  }
}

/** Create `path` (it must not exist; mode 0600) holding `body`, fsynced before it is closed. */
export async function writeNewSynced(path: string, body: string | Buffer): Promise<void> {
  const fh = await open(path, 'wx', 0o600);
  try {
    await fh.writeFile(body);
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/**
 * Replace `file` with `body` so that a crash leaves the old or the new content: a temp file next to it
 * (named `<tempPrefix><name>-<random>`, so tree scans can skip it), fsync, rename, fsync of the directory.
 */
export async function writeFileDurable(file: string, body: string | Buffer, tempPrefix: string): Promise<void> {
  const dir = dirname(file);
  await mkdir(dir, { recursive: true });
  const tmp = join(dir, `${tempPrefix}${basename(file).slice(0, 40)}-${randomBytes(4).toString('hex')}`);
  await writeNewSynced(tmp, body);
  await rename(tmp, file);
  await syncDir(dir);
}
