/**
 * Files in the data directory that nimbus-ha writes: its own settings include (node-local, never part of
 * a base backup), pg_hba.conf, the standby signal, and removal of ALTER SYSTEM settings that must not
 * travel from a primary to its clone (synchronous_standby_names naming the clone itself, the write fence).
 */
import { createHash, createHmac, pbkdf2Sync, randomBytes } from 'node:crypto';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { chownFor, type OsUser } from './proc.js';

export const NODE_CONF = 'nimbus-ha.conf';
const INCLUDE_LINE = `include_if_exists = '${NODE_CONF}'`;

/**
 * ALTER SYSTEM settings a clone or rejoining node must not inherit: the primary's synchronous standby
 * (the clone itself), the write fence, and recovery settings that would override the node file.
 */
export const PRIMARY_ONLY_AUTO_SETTINGS = [
  'synchronous_standby_names',
  'default_transaction_read_only',
  'primary_conninfo',
  'primary_slot_name',
  'restore_command',
  'recovery_target_timeline',
];

/** A postgresql.conf string literal. */
export function confQuote(v: string): string {
  return `'${v.replace(/\\/g, '\\\\').replace(/'/g, "''")}'`;
}

/** A libpq conninfo value. */
export function conninfoQuote(v: string): string {
  return `'${v.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

/** A /bin/sh single-quoted word. */
export function shQuote(v: string): string {
  return `'${v.replace(/'/g, `'\\''`)}'`;
}

/**
 * SCRAM-SHA-256 verifier as PostgreSQL stores it, so CREATE/ALTER ROLE never carries a clear-text
 * password (nothing to leak through statement logging).
 */
export function scramVerifier(password: string, iterations = 4096, salt = randomBytes(16)): string {
  const salted = pbkdf2Sync(password.normalize('NFKC'), salt, iterations, 32, 'sha256');
  const clientKey = createHmac('sha256', salted).update('Client Key').digest();
  const storedKey = createHash('sha256').update(clientKey).digest();
  const serverKey = createHmac('sha256', salted).update('Server Key').digest();
  return `SCRAM-SHA-256$${iterations}:${salt.toString('base64')}$${storedKey.toString('base64')}:${serverKey.toString('base64')}`;
}

export async function writeOwned(path: string, text: string, user: OsUser | null, mode = 0o600): Promise<void> {
  await writeFile(path, text, { mode });
  await chownFor(path, user);
}

export function archiveCommand(archiveDir: string): string {
  const dir = shQuote(archiveDir);
  // Idempotent: an identical file already archived counts as success (the archiver retries after a crash).
  return `f=${dir}/%f; if test -f "$f" && cmp -s %p "$f"; then exit 0; fi; cp %p "$f.tmp" && mv "$f.tmp" "$f"`;
}

export function restoreCommand(archiveDir: string): string {
  return `cp ${shQuote(archiveDir)}/%f %p`;
}

export interface NodeConfInput {
  listenAddresses: string;
  port: number;
  archiveDir: string;
  archiveTimeoutS: number;
  maxSlotWalKeepSize: string;
  settings: Record<string, string>;
  standby: null | { conninfo: string; slot: string };
  /** Server SSL (with `tls`): the node's certificate and key and the cluster CA, as copies the server user owns. */
  ssl?: null | { certFile: string; keyFile: string; caFile: string };
}

export function renderNodeConf(c: NodeConfInput): string {
  const s: Record<string, string> = {
    listen_addresses: confQuote(c.listenAddresses),
    port: String(c.port),
    unix_socket_directories: "''",
    password_encryption: "'scram-sha-256'",
    wal_level: 'replica',
    max_wal_senders: '10',
    max_replication_slots: '10',
    hot_standby: 'on',
    hot_standby_feedback: 'on',
    wal_receiver_status_interval: "'1s'",
    wal_retrieve_retry_interval: "'1s'",
    max_slot_wal_keep_size: confQuote(c.maxSlotWalKeepSize),
    archive_mode: 'on',
    archive_command: confQuote(archiveCommand(c.archiveDir)),
    archive_timeout: String(c.archiveTimeoutS),
    restore_command: confQuote(restoreCommand(c.archiveDir)),
    recovery_target_timeline: "'latest'",
  };
  if (c.standby) {
    s.primary_conninfo = confQuote(c.standby.conninfo);
    s.primary_slot_name = confQuote(c.standby.slot);
  }
  for (const [k, v] of Object.entries(c.settings)) s[k] = /^[A-Za-z0-9_.-]+$/.test(v) ? v : confQuote(v);
  if (c.ssl) {
    // After `settings`: with tls configured, SSL cannot be switched off by an extra setting.
    s.ssl = 'on';
    s.ssl_cert_file = confQuote(c.ssl.certFile);
    s.ssl_key_file = confQuote(c.ssl.keyFile);
    s.ssl_ca_file = confQuote(c.ssl.caFile);
    s.ssl_min_protocol_version = "'TLSv1.2'";
  }
  const lines = Object.entries(s).map(([k, v]) => `${k} = ${v}`);
  return `# Written by nimbus-ha for this node; replaced on every start, clone and rejoin.\n${lines.join('\n')}\n`;
}

/** Makes postgresql.conf include the node file (last, so it wins over earlier lines). */
export async function ensureInclude(dataDir: string, user: OsUser | null): Promise<void> {
  const p = join(dataDir, 'postgresql.conf');
  const text = await readFile(p, 'utf8');
  if (text.split('\n').some((l) => l.trim() === INCLUDE_LINE)) return;
  await writeOwned(p, `${text.replace(/\n?$/, '\n')}${INCLUDE_LINE}\n`, user);
}

/** Removes keys from postgresql.auto.conf (server stopped); returns the keys that were present. */
export async function removeAutoSettings(dataDir: string, keys: readonly string[], user: OsUser | null): Promise<string[]> {
  const p = join(dataDir, 'postgresql.auto.conf');
  let text: string;
  try {
    text = await readFile(p, 'utf8');
  } catch {
    return [];
  }
  const removed: string[] = [];
  const kept = text.split('\n').filter((line) => {
    const m = /^\s*([A-Za-z_][A-Za-z0-9_.]*)\s*=/.exec(line);
    if (m && keys.includes(m[1].toLowerCase())) {
      removed.push(m[1]);
      return false;
    }
    return true;
  });
  if (removed.length) await writeOwned(p, kept.join('\n'), user);
  return removed;
}

/**
 * pg_hba.conf of an embedded server. With `ssl` (nimbus-ha's `tls` configured) replication connections are
 * accepted only over SSL (`hostssl`) with a client certificate that verifies against the cluster CA
 * (`clientcert=verify-ca`) and the replication password; a replication connection without SSL matches no
 * line and is refused, loopback included. Ordinary sessions (`all`) are unchanged.
 */
export function renderHba(opts: { superuser: string; replicationUser: string; cidrs: string[]; ssl?: boolean }): string {
  const nets = ['127.0.0.1/32', '::1/128', ...opts.cidrs];
  const lines = ['# Written by nimbus-ha. TYPE DATABASE USER ADDRESS METHOD'];
  for (const net of nets) {
    lines.push(
      opts.ssl
        ? `hostssl replication ${opts.replicationUser} ${net} scram-sha-256 clientcert=verify-ca`
        : `host replication ${opts.replicationUser} ${net} scram-sha-256`,
    );
    lines.push(`host all all ${net} scram-sha-256`);
  }
  return lines.join('\n') + '\n';
}

export async function setStandbySignal(dataDir: string, on: boolean, user: OsUser | null): Promise<void> {
  const p = join(dataDir, 'standby.signal');
  if (on) await writeOwned(p, '', user);
  else await rm(p, { force: true });
  await rm(join(dataDir, 'recovery.signal'), { force: true });
}
