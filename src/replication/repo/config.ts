/**
 * Config section `repo`: how this node's image repository follows the primary's.
 * The lead's top-level schema embeds `repoConfigSchema`; every object is strict.
 */
import { z } from 'zod';
import cron from 'node-cron';

export const repoStoreSchema = z
  .object({
    endpoint: z.string().url().describe('S3 endpoint URL of the repository, e.g. http://127.0.0.1:8888 (Cumulus).'),
    region: z.string().min(1).default('us-east-1').describe('Region name sent in requests (Cumulus ignores it).'),
    bucket: z.string().min(1).default('Repo').describe('Bucket holding the images; Cumulus names it "Repo".'),
    accessKeyId: z.string().min(1).optional().describe('Access key; the SDK default chain is used when absent (v4 only).'),
    secretAccessKey: z.string().min(1).optional().describe('Secret key matching accessKeyId.'),
    forcePathStyle: z.boolean().default(true).describe('Address buckets as http://host/bucket (Cumulus and s3rver need it).'),
    signatureVersion: z
      .enum(['v4', 'v2'])
      .default('v4')
      .describe('Request signing: v2 (Authorization: AWS id:signature) for Cumulus, v4 for current S3 servers.'),
    multipart: z
      .boolean()
      .default(true)
      .describe('Multipart uploads for large objects; false for Cumulus, which stores each object with one PUT.'),
    partSize: z
      .number()
      .int()
      .min(5 * 1024 * 1024)
      .default(5 * 1024 * 1024)
      .describe(
        'Multipart part size in bytes (objects past 10,000 parts get larger parts); a multipart copy holds about 10 × partSize of buffers.',
      ),
    multipartThreshold: z
      .number()
      .int()
      .min(5 * 1024 * 1024)
      .default(128 * 1024 * 1024)
      .describe('Objects up to this size are stored with one streaming PUT even when multipart is on.'),
  })
  .strict()
  .superRefine((s, ctx) => {
    if (s.signatureVersion === 'v2' && (!s.accessKeyId || !s.secretAccessKey)) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['accessKeyId'], message: 'signatureVersion v2 needs accessKeyId and secretAccessKey' });
    }
    if (Boolean(s.accessKeyId) !== Boolean(s.secretAccessKey)) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['secretAccessKey'], message: 'give both accessKeyId and secretAccessKey, or neither' });
    }
  });

export const repoConfigSchema = z
  .object({
    enabled: z.boolean().default(true).describe('Replicate the image repository while this node is the standby.'),
    local: repoStoreSchema.describe("This node's repository (the target while standby, the source while primary)."),
    peer: repoStoreSchema
      .optional()
      .describe("The peer's repository as reachable from this node (the source while standby); required when enabled."),
    intervalMs: z
      .number()
      .int()
      .min(100)
      .default(1000)
      .describe('Pause between incremental passes in ms; an idle pass costs one listing per side unless the primary sends a change hint (watchDir). With a hint, a skipped pass is followed by a longer pause: until the hint could go stale or fullPassMaxAgeMs falls due, never less than this.'),
    watchDir: z
      .string()
      .min(1)
      .optional()
      .describe(
        "Backing directory of this node's own repository (Cumulus: $NIMBUS_HOME/cumulus/posixdata), watched while this node is primary. The generation of file-system events there travels in heartbeats, and the standby skips a pass's listings while it has not moved since its last clean full pass. Must be the directory the local repository stores objects in, on this host; unset: no hint, every pass lists both sides.",
      ),
    fullPassMaxAgeMs: z
      .number()
      .int()
      .min(0)
      .default(30_000)
      .describe('With a change hint from the primary, a full listing pass still runs at least this often (ms); it also catches changes to this node\'s own repository. 0: never skip a pass.'),
    deepVerifyCron: z
      .string()
      .default('17 3 * * *')
      .refine((s) => cron.validate(s), 'not a valid cron expression')
      .describe('node-cron schedule of the deep verification pass (reads and MD5-compares every object).'),
    concurrency: z.number().int().min(1).max(64).default(8).describe('Objects copied in parallel.'),
    maxDeleteFraction: z
      .number()
      .min(0)
      .max(1)
      .default(0.1)
      .describe('Largest share of the target a pass may delete; a pass that would delete more refuses (REPO_DELETE_GUARD).'),
    maxDeletesPerWindow: z
      .number()
      .int()
      .min(0)
      .default(1000)
      .describe('At most this many objects are deleted on this node within one deleteWindowMs, however large the repository.'),
    deleteWindowMs: z
      .number()
      .int()
      .min(1000)
      .default(3_600_000)
      .describe(
        'Sliding window of the delete guard (ms): all passes within it together may delete at most maxDeleteFraction of the target (as it was before the window\'s deletes) and at most maxDeletesPerWindow objects, so a trickle of deletes cannot empty the standby pass by pass; a pass over the limit deletes nothing (REPO_DELETE_GUARD) and the next passes try again.',
      ),
    allowEmptySource: z
      .boolean()
      .default(false)
      .describe('Let a pass empty the target when the source lists no objects (normally a sign of a wrong bucket).'),
    verify: z
      .enum(['head', 'response'])
      .default('response')
      .describe(
        "Post-copy check: 'response' compares the ETag of the target's PUT answer with the MD5 the content must have (the source's MD5 ETag, also sent as Content-MD5, or the MD5 or multipart composite ETag of the bytes sent), falling back to HEAD when the answer has none; 'head' also re-reads each copy with HEAD.",
      ),
    conflictPolicy: z
      .enum(['source-wins', 'quarantine'])
      .default('quarantine')
      .describe('Fail-back: quarantine keeps target objects under nha-quarantine/<eventId>/ before overwriting or deleting them.'),
    quarantine: z
      .object({
        policy: z
          .enum(['merge', 'keep'])
          .default('merge')
          .describe(
            "What a node that was primary does with the objects its repository sync moved aside (nha-quarantine/) when it rejoins as standby. merge: those whose keys the primary lacks are copied to the primary (and come back by the next pass); a key the primary holds with other content stays in quarantine (event repo.quarantine.conflicts lists the keys), and so does a key the primary deleted after the object was written (its delete journal; event repo.quarantine.deleted_on_primary). keep: everything stays in quarantine (event repo.quarantine.kept lists the keys) for `nimbus-ha repo quarantine merge`.",
          ),
        keepDays: z
          .number()
          .int()
          .min(0)
          .default(30)
          .describe('Quarantined objects older than this many days are deleted (checked at start and every 6 hours; conflicts too). 0: keep them forever. The repository\'s delete journal keeps its tombstones as long.'),
      })
      .strict()
      .default({})
      .describe('Objects moved aside by repository sync (nha-quarantine/<eventId>/<key> in the bucket): merge-back on rejoin and retention.'),
    mode: z
      .enum(['async', 'sync'])
      .default('async')
      .describe(
        "sync: writes go through the write-through front (front.listen), which acknowledges an upload or delete only when both nodes' repositories answered (or, after degradeAfterMs without the standby, when the data-holder record names this node alone); async: the standby pulls in passes and an acknowledged upload may be missing on it after a failover.",
      ),
    front: z
      .object({
        listen: z
          .object({
            host: z.string().min(1).default('127.0.0.1').describe('Address the front listens on.'),
            port: z.number().int().min(0).max(65535).describe('TCP port of the front (the repository VIP forwards to it).'),
          })
          .strict()
          .describe('Address of the S3 write-through front; the repository VIP points at it (mode sync).'),
        degradeAfterMs: z
          .number()
          .int()
          .min(0)
          .default(5000)
          .describe('The standby repository unreachable this long: the front acknowledges writes alone (after the data-holder record names this node alone; an event says so).'),
        probeMs: z.number().int().min(50).default(500).describe("How often the front checks the standby's repository (ms)."),
        maxClockSkewMs: z
          .number()
          .int()
          .min(1000)
          .default(900_000)
          .describe('Signed requests whose date is further than this from the clock are refused (replays).'),
      })
      .strict()
      .optional()
      .describe('Write-through S3 front of mode sync; clients sign with the local repository\'s v2 credentials, the front verifies and re-signs toward both repositories.'),
  })
  .strict()
  .superRefine((c, ctx) => {
    if (c.enabled && !c.peer) ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['peer'], message: 'repo.peer is required when repo.enabled is true' });
    if (c.mode === 'sync' && !c.front) ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['front'], message: 'repo.mode sync needs repo.front (the write-through front the repository VIP points at)' });
    if (c.mode === 'sync' && (!c.local.accessKeyId || !c.local.secretAccessKey))
      ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['local', 'accessKeyId'], message: 'repo.mode sync verifies client signatures with the local credentials: give accessKeyId and secretAccessKey' });
  });

export type RepoStoreConfig = z.infer<typeof repoStoreSchema>;
export type RepoConfig = z.infer<typeof repoConfigSchema>;
