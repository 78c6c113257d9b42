/**
 * `PostgresNodeOptions`: what a `PostgresNode` is given besides its `db` configuration (re-exported from
 * embedded.ts, where importers take it from).
 */
import type { TlsFiles } from '../../src/ports.js';

export interface PostgresNodeOptions {
  /** fsync every file written by a clone (on by default; tests may turn it off for speed). */
  fsyncClone?: boolean;
  /** Where pg_ctl writes the server log; default `<dataDir>/log/server.log`. */
  logFile?: string;
  /**
   * The node's `tls` (certificate, key, cluster CA). With it the server runs with ssl on, pg_hba.conf
   * (embedded mode) accepts replication only over SSL with a client certificate of the CA, and the standby
   * and the sidecar's replication sessions connect with sslmode=verify-full (the peer's certificate must
   * name the host they connect to: `db.peer.host`, and the other node's `db.advertiseHost`). Without it
   * nothing about SSL is set (PostgreSQL's default: off).
   */
  tls?: TlsFiles;
  /**
   * Where the server's copies of the three files go (owned by the server's OS user, mode 0600, rewritten
   * on every start, clone and rejoin); default `<dataDir>.tls`, outside the data directory so a base
   * backup never carries this node's key to the other.
   */
  tlsDir?: string;
}
