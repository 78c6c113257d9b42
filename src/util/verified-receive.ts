/**
 * Receives a streamed body into a file, all or nothing: written to a temporary name beside the target
 * (created exclusively), fsynced, its sha256 (and size, when given) compared with what the sender
 * announced, and only then renamed into place. A mismatch or a broken stream leaves nothing behind.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, open, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { Readable } from 'node:stream';

export interface VerifiedReceive {
  /** Final path of the file. */
  target: string;
  /** Expected sha256 (hex) of the whole body. */
  sha256: string;
  /** Expected length in bytes (unchecked when undefined). */
  size?: number;
  /** Mode of the new file (default 0640). */
  mode?: number;
  /** Suffix of the temporary name, `.<name>.<random><suffix>` in the target's directory (default `.tmp`). */
  tmpSuffix?: string;
  /** The error thrown on a checksum or size mismatch. */
  mismatch: (got: { sha256: string; bytes: number }) => Error;
  /** Runs on the verified temporary file before the rename (chown, utimes). */
  beforeRename?: (tmp: string) => Promise<void>;
}

export async function receiveVerified(body: Readable, o: VerifiedReceive): Promise<{ bytes: number }> {
  const dir = dirname(o.target);
  await mkdir(dir, { recursive: true });
  const tmp = join(dir, `.${basename(o.target)}.${randomBytes(6).toString('hex')}${o.tmpSuffix ?? '.tmp'}`);
  const hash = createHash('sha256');
  let bytes = 0;
  const fh = await open(tmp, 'wx', o.mode ?? 0o640);
  try {
    for await (const chunk of body) {
      const b = chunk as Buffer;
      hash.update(b);
      bytes += b.length;
      await fh.write(b);
    }
    await fh.sync();
  } catch (err) {
    await fh.close();
    await rm(tmp, { force: true });
    throw err;
  }
  await fh.close();
  const got = hash.digest('hex');
  if (got !== o.sha256 || (o.size !== undefined && bytes !== o.size)) {
    await rm(tmp, { force: true });
    throw o.mismatch({ sha256: got, bytes });
  }
  try {
    if (o.beforeRename) await o.beforeRename(tmp);
    await rename(tmp, o.target);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
  return { bytes };
}
