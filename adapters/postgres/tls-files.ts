/**
 * The server's TLS files: copies of the node's certificate, key and cluster CA owned by the server's OS
 * user (PostgreSQL refuses a key readable by others), and the same files for the sidecar's own
 * replication sessions.
 */
import { readFileSync } from 'node:fs';
import { chmod, mkdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { TlsFiles } from '../../src/ports.js';
import { writeOwned } from './conf.js';
import { chownFor, type OsUser } from './proc.js';

/** File names of the server's copies in the TLS directory. */
const TLS_NAMES = { cert: 'node.crt', key: 'node.key', ca: 'ca.crt' } as const;

/** The server's copies of cert, key and CA in `dir`. */
export function serverTlsFiles(dir: string): { certFile: string; keyFile: string; caFile: string } {
  return { certFile: join(dir, TLS_NAMES.cert), keyFile: join(dir, TLS_NAMES.key), caFile: join(dir, TLS_NAMES.ca) };
}

/**
 * Copies cert, key and CA into `dir` for the server's OS user: PostgreSQL (server and walreceiver) refuses
 * a key readable by others, and when nimbus-ha runs as root the originals are root's (mode 0600).
 */
export async function installServerTls(t: TlsFiles | undefined, dir: string, user: OsUser | null): Promise<void> {
  if (!t) return;
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await chmod(dir, 0o700);
  await chownFor(dir, user);
  for (const field of ['cert', 'key', 'ca'] as const) {
    const target = join(dir, TLS_NAMES[field]);
    await rm(target, { force: true }); // a fresh file: mode and owner as written, whatever was there
    await writeOwned(target, await readFile(t[field], 'utf8'), user);
  }
}

/** TLS for the sidecar's own replication sessions to the peer (undefined without tls). */
export function replicationSsl(t: TlsFiles | undefined): { ca: string; cert: string; key: string } | undefined {
  if (!t) return undefined;
  return { ca: readFileSync(t.ca, 'utf8'), cert: readFileSync(t.cert, 'utf8'), key: readFileSync(t.key, 'utf8') };
}
