import { z } from 'zod';

const itemName = z
  .string()
  .regex(/^[a-z0-9][a-z0-9-]{0,62}$/, 'lower-case letters, digits and dashes')
  .describe('name of this item in /status and on the peer (the same on both nodes)');

export const nimbusStateConfigSchema = z
  .object({
    home: z.string().min(1).describe('NIMBUS_HOME on this node; relative item paths are under it (the peer may use another root)'),
    intervalMs: z.number().int().min(100).default(1000).describe('how often the primary takes and ships a snapshot of every item'),
    stagingDir: z.string().min(1).optional().describe('where snapshots are built (primary) and received and verified (standby); default <dataDir>/nimbus-state; same filesystem as the items for atomic installs'),
    requestTimeoutMs: z.number().int().min(1000).default(120_000).describe('longest peer request (a file upload, a verification on the standby)'),
    derby: z
      .array(
        z
          .object({
            name: itemName.default('derby'),
            path: z.string().min(1).default('services/var/nimbus').describe('directory holding the embedded Derby databases of one JVM (and accounting-events.txt): copied at one instant and installed as one unit'),
            pidFile: z.string().min(1).optional().describe('file holding the PID of the JVM that owns the databases (frozen with SIGSTOP for the final copy); unset or no such process: the files are copied as at rest'),
            maxPauseMs: z.number().int().min(1).default(200).describe('longest freeze of the JVM; a longer final copy resumes it and retries next round'),
            boundMs: z.number().int().min(100).default(10_000).describe('a standby whose last verified copy is older than this is not caught up'),
            tableCheckEveryMs: z
              .number()
              .int()
              .min(0)
              .default(300_000)
              .describe('how often the standby runs SYSCS_CHECK_TABLE on every table of a copy (and re-reads its mirror against the recorded digests) before installing it; other copies are booted (crash recovery) only. 0: every copy'),
          })
          .strict(),
      )
      .default([])
      .describe('Derby database directories copied point-in-time with a short JVM freeze, verified by booting on the standby, installed by rename'),
    sqlite: z
      .array(
        z
          .object({
            name: itemName.default('authz'),
            path: z.string().min(1).default('cumulus/etc/authz.db').describe('the sqlite database (Cumulus authz.db), snapshotted with the online backup API'),
            posixdata: z.string().min(1).default('cumulus/posixdata').describe('the object files its data_key column points to; shipped before the database, data_key prefixes rewritten when the roots differ'),
            boundMs: z.number().int().min(100).default(10_000).describe('a standby whose last verified copy is older than this is not caught up'),
          })
          .strict(),
      )
      .default([])
      .describe('sqlite databases (Cumulus authz.db) with the posixdata tree they index'),
    derbyClasspath: z.string().min(1).default('/usr/share/java/derby.jar').describe('Derby jar(s) used to boot and check copies (colon-separated); Nimbus\'s own lib/derby*.jar keeps the version the service uses'),
    java: z.string().min(1).default('java').describe('java executable'),
    javac: z.string().min(1).default('javac').describe('javac executable (compiles the small verification program once)'),
    sqlite3: z.string().min(1).default('sqlite3').describe('sqlite3 shell executable'),
  })
  .strict();

export type NimbusStateConfig = z.infer<typeof nimbusStateConfigSchema>;
