/**
 * Wire format between the primary's sender and the standby's receiver (`/peer/files/*`).
 * Paths are relative POSIX paths inside a named tree; the receiver re-checks every one of them.
 */
import { z } from 'zod';

/** What a node has at one path of a tree (the manifest is a list of these). */
export type ManifestEntry =
  | { type: 'file'; path: string; size: number; mtimeMs: number; sha256: string; mode: number }
  | { type: 'dir'; path: string; mode: number }
  | { type: 'link'; path: string; target: string };

const sha = z.string().regex(/^[0-9a-f]{64}$/, 'sha256 must be 64 lower-case hex digits');
const mode = z.number().int().min(0).max(0o7777);
const relPath = z.string().min(1).max(4096);

export const batchEntrySchema = z.discriminatedUnion('op', [
  z
    .object({
      op: z.literal('file'),
      path: relPath,
      mode,
      mtimeMs: z.number().nonnegative(),
      sha256: sha,
      /** File content, base64. */
      data: z.string(),
    })
    .strict(),
  z.object({ op: z.literal('dir'), path: relPath, mode }).strict(),
  z.object({ op: z.literal('link'), path: relPath, target: z.string().min(1).max(4096) }).strict(),
  z.object({ op: z.literal('delete'), path: relPath }).strict(),
]);
export type BatchEntry = z.infer<typeof batchEntrySchema>;

export const batchSchema = z
  .object({
    tree: z.string().min(1),
    entries: z.array(batchEntrySchema).max(100_000),
  })
  .strict();
export type Batch = z.infer<typeof batchSchema>;

export const manifestRequestSchema = z.object({ tree: z.string().min(1) }).strict();

export const fileQuerySchema = z
  .object({
    tree: z.string().min(1),
    path: relPath,
    sha256: sha,
    mode: z.coerce.number().int().min(0).max(0o7777),
    mtime: z.coerce.number().nonnegative(),
  })
  .strict();
export type FileQuery = z.infer<typeof fileQuerySchema>;

export interface ManifestResponse {
  tree: string;
  entries: ManifestEntry[];
}

/** Result of applying a batch or one streamed file. */
export interface ApplyResult {
  applied: number;
  /** Diverged local files moved aside before being overwritten or deleted. */
  quarantined: number;
  /** Directory under quarantineDir holding them, when any. */
  quarantineId?: string;
}

/**
 * Merge-back (standby → primary, on a rejoin): files the standby wrote while it was primary. The
 * primary writes an entry only where it has nothing at that path and did not delete one there since
 * it became primary; `dryRun` only classifies.
 */
export const mergeRequestSchema = z
  .object({
    tree: z.string().min(1),
    dryRun: z.boolean().optional(),
    entries: z
      .array(
        z
          .object({
            path: relPath,
            mode,
            mtimeMs: z.number().nonnegative(),
            /** When the standby wrote this content (its clock, ms): the primary's tombstones newer than it keep the path deleted. Default mtimeMs. */
            writtenMs: z.number().nonnegative().optional(),
            sha256: sha,
            /** File content, base64 (empty in a dry run). */
            data: z.string(),
          })
          .strict(),
      )
      .max(100_000),
  })
  .strict();
export type MergeRequest = z.infer<typeof mergeRequestSchema>;

/**
 * What the primary did with one merged path: `merged` written now (or would be, in a dry run);
 * `same` it holds that content already; `conflict` it holds something else there (its version wins);
 * `deleted` its delete journal holds a tombstone of that path (or a directory above it) newer than the
 * entry's write time, or it had received the path and no longer has it: not brought back.
 */
export type MergeOutcome = 'merged' | 'same' | 'conflict' | 'deleted';

export interface MergeResponse {
  tree: string;
  results: Array<{ path: string; outcome: MergeOutcome }>;
}
