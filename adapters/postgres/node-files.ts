/**
 * The files `PostgresNode` writes into the data directory before the server (re)starts: the node-local
 * settings file (and pg_hba.conf in embedded mode), with the server's TLS copies beside the data
 * directory and the log directory pg_ctl writes to.
 */
import { mkdir, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { DbEndpoint } from '../../src/ports.js';
import { conninfoQuote, ensureInclude, renderHba, renderNodeConf, writeOwned, NODE_CONF, type NodeConfInput } from './conf.js';
import type { PostgresNodeOptions } from './node-options.js';
import { chownFor, type OsUser } from './proc.js';
import { installServerTls, serverTlsFiles } from './tls-files.js';

/** What of the node's `db` configuration the files are written from. */
export interface NodeFilesConfig extends Omit<NodeConfInput, 'standby' | 'ssl'> {
  mode: 'embedded' | 'external';
  dataDir: string;
  superuser: string;
  replicationUser: string;
  replicationPassword: string;
  allowCidrs: string[];
}

/** The node and where its files go: `slot` is the slot it streams from as a standby, `tls` its TLS files. */
export interface NodeFilesTarget {
  name: string;
  slot: string;
  tls: PostgresNodeOptions['tls'];
  tlsDir: string;
  user: OsUser | null;
}

/** Writes the node-local settings file; `standby` makes the node follow that primary. */
export async function writeNodeConf(c: NodeFilesConfig, node: NodeFilesTarget, standby: DbEndpoint | null, overrides: Record<string, string> = {}): Promise<void> {
  const user = node.user;
  const ssl = node.tls ? serverTlsFiles(node.tlsDir) : null;
  await installServerTls(node.tls, node.tlsDir, user);
  const conninfo = standby
    ? [
        `host=${conninfoQuote(standby.host)}`,
        `port=${standby.port}`,
        `user=${conninfoQuote(c.replicationUser)}`,
        `password=${conninfoQuote(c.replicationPassword)}`,
        `application_name=${conninfoQuote(node.name)}`,
        'connect_timeout=5',
        ...(ssl
          ? ['sslmode=verify-full', `sslrootcert=${conninfoQuote(ssl.caFile)}`, `sslcert=${conninfoQuote(ssl.certFile)}`, `sslkey=${conninfoQuote(ssl.keyFile)}`]
          : []),
      ].join(' ')
    : '';
  const text = renderNodeConf({
    listenAddresses: c.listenAddresses,
    port: c.port,
    archiveDir: c.archiveDir,
    archiveTimeoutS: c.archiveTimeoutS,
    maxSlotWalKeepSize: c.maxSlotWalKeepSize,
    settings: { ...c.settings, ...overrides },
    standby: standby ? { conninfo, slot: node.slot } : null,
    ssl,
  });
  await writeOwned(join(c.dataDir, NODE_CONF), text, user);
  await ensureInclude(c.dataDir, user);
  if (c.mode === 'embedded') {
    await writeOwned(join(c.dataDir, 'pg_hba.conf'), renderHba({ superuser: c.superuser, replicationUser: c.replicationUser, cidrs: c.allowCidrs, ssl: ssl !== null }), user);
  }
  await mkdir(join(c.dataDir, 'log'), { recursive: true, mode: 0o700 });
  await chownFor(join(c.dataDir, 'log'), user);
}

/** Whether `dataDir` holds anything (a missing directory holds nothing). */
export async function hasData(dataDir: string): Promise<boolean> {
  try {
    return (await readdir(dataDir)).length > 0;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}
