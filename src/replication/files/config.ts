/**
 * Config section `files`: which directory trees the primary replicates to the standby, and how fast.
 * The lead's top-level schema embeds `filesConfigSchema`; objects are strict so a misspelt key is an error.
 */
import { posix } from 'node:path';
import { z } from 'zod';
import { isInside } from './paths.js';

export const filesTreeSchema = z
  .object({
    name: z
      .string()
      .min(1)
      .max(64)
      .regex(/^[A-Za-z0-9_.-]+$/, 'use letters, digits, dot, dash or underscore')
      .refine((n) => n !== '.' && n !== '..', 'tree name must not be "." or ".."')
      .describe('Tree name; the same name on both nodes links the two local roots.'),
    path: z
      .string()
      .min(1)
      .refine((p) => posix.isAbsolute(p), 'must be an absolute path')
      .describe('Local root directory of the tree on this node (may differ between nodes).'),
    exclude: z
      .array(z.string().min(1))
      .default([])
      .describe(
        'Globs of paths not synced (`*`, `?`, `**`). Without a slash a glob matches a name at any depth ' +
          '(e.g. "*.swp"); with a slash it is anchored at the tree root (e.g. "logs/**"). Excluding a directory excludes its contents.',
      ),
  })
  .strict();
export type FilesTreeConfig = z.infer<typeof filesTreeSchema>;

export const filesConfigSchema = z
  .object({
    trees: z
      .array(filesTreeSchema)
      .default([])
      .describe('Directory trees replicated from the primary to the standby (configuration files, keys...).'),
    batchMs: z
      .number()
      .int()
      .min(0)
      .max(60_000)
      .default(200)
      .describe('Quiet time after the last change before a batch is shipped.'),
    maxBatchMs: z
      .number()
      .int()
      .min(1)
      .max(120_000)
      .default(500)
      .describe('Upper bound from the first change of a batch to its shipping, even while changes keep coming.'),
    fullPassIntervalMs: z
      .number()
      .int()
      .min(0)
      .default(300_000)
      .describe(
        'The primary also compares each tree with the standby\'s copy this often (a manifest request; unchanged files are not read again). ' +
          'It catches what the directory watches cannot see: a write through a hard link from outside the tree, an mmap write, an overflowed inotify queue. 0: only at start, on reconnect and after errors.',
      ),
    largeFileBytes: z
      .number()
      .int()
      .min(1024)
      .default(1024 * 1024)
      .describe('Files larger than this are streamed one by one instead of travelling inline in a JSON batch.'),
    quarantineDir: z
      .string()
      .refine((p) => posix.isAbsolute(p), 'must be an absolute path')
      .optional()
      .describe(
        'Receiver side: every file sync overwrites or deletes is kept here first. A file written locally (diverged from ' +
          'what the primary last sent) goes to <quarantineDir>/<eventId>/<tree>/<path> with an event; a copy exactly as ' +
          'received goes to <quarantineDir>/previous/<eventId>/<tree>/<path>. Unset: <dataDir>/quarantine/files.',
      ),
    quarantine: z
      .object({
        policy: z
          .enum(['merge', 'keep'], { errorMap: () => ({ message: 'must be "merge" or "keep"' }) })
          .default('merge')
          .describe(
            'What a node that was primary does, when it rejoins as standby, with the files it wrote while primary that the primary lacks ' +
              '(in its tree, or moved aside into quarantine by the sync). merge: they are sent to the primary (written there only where the ' +
              'primary has no file at that path and its delete journal holds no delete of that path newer than the file); a path the primary holds with other ' +
              'content keeps the primary\'s version, the standby\'s stays in quarantine (event files_merge_conflicts lists the paths). ' +
              'keep: nothing is sent; event files_merge_kept lists the paths for the operator. Until the merge is done the standby is not caught up.',
          ),
      })
      .strict()
      .optional()
      .describe('Merge-back on rejoin of the files a former primary wrote that its successor never received.'),
    quarantineRetentionDays: z
      .number()
      .min(0)
      .default(14)
      .describe('Quarantined and previous copies older than this many days are removed (checked at most hourly); 0 keeps them forever. The delete journal of the trees keeps its tombstones as long.'),
    maxDeleteFraction: z
      .number()
      .min(0)
      .max(1)
      .default(0.1)
      .describe(
        'Largest share of the standby copy of a tree that one change set, and all change sets of one deleteWindowMs together, may delete; ' +
          'above it the deletes are held back (the standby keeps the files) and a files_delete_guard event (critical) is recorded.',
      ),
    deletesAlwaysAllowed: z
      .number()
      .int()
      .min(0)
      .default(10)
      .describe('Deletes allowed per change set and per window whatever maxDeleteFraction says, so small trees can lose a file (an empty source still deletes nothing).'),
    maxDeletesPerWindow: z
      .number()
      .int()
      .min(0)
      .default(100)
      .describe('At most this many entries of a tree are deleted on the standby within one deleteWindowMs, however large the tree; a trickle of deletes cannot empty the copy.'),
    deleteWindowMs: z
      .number()
      .int()
      .min(1000)
      .default(600_000)
      .describe('Length of the sliding window over which deletes are counted (ms); held-back deletes are tried again when it has room.'),
    allowEmptySource: z
      .boolean()
      .default(false)
      .describe('Let an empty (or unmounted) source tree delete the whole standby copy. Normally an empty source is a mistake and deletes nothing.'),
  })
  .strict()
  .superRefine((c, ctx) => {
    if (c.maxBatchMs < c.batchMs) {
      ctx.addIssue({ code: 'custom', message: 'maxBatchMs must be at least batchMs', path: ['maxBatchMs'] });
    }
    const names = new Set<string>();
    c.trees.forEach((t, i) => {
      if (names.has(t.name)) ctx.addIssue({ code: 'custom', message: `duplicate tree name "${t.name}"`, path: ['trees', i, 'name'] });
      names.add(t.name);
      c.trees.forEach((o, j) => {
        if (j !== i && isInside(posix.resolve(o.path), posix.resolve(t.path))) {
          ctx.addIssue({ code: 'custom', message: `tree "${t.name}" lies inside tree "${o.name}"; trees must not nest`, path: ['trees', i, 'path'] });
        }
      });
      if (c.quarantineDir && isInside(posix.resolve(t.path), posix.resolve(c.quarantineDir))) {
        ctx.addIssue({ code: 'custom', message: `quarantineDir must lie outside tree "${t.name}"`, path: ['quarantineDir'] });
      }
    });
  })
  .describe('Config-file tree sync: the primary watches trees and ships changes to the standby within about a second.');
export type FilesConfig = z.infer<typeof filesConfigSchema>;
