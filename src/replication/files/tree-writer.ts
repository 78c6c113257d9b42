/**
 * How the receiver (receiver.ts) lands validated entries in a tree on the standby: files by temp file,
 * chmod, utimes and rename (a streamed one hashed while it is written), directories, links (checked
 * again against the whole tree after a batch that adds any), and removals, with a diverged local file
 * moved into quarantine (or an as-received one kept as previous copy) before it is replaced.
 */
import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { chmod, mkdir, open, readdir, rename, rm, symlink, unlink, utimes } from 'node:fs/promises';
import { posix } from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Clock } from '../../ports.js';
import { HaError } from '../../errors.js';
import type { FilesTreeConfig } from './config.js';
import { ensureParent, checkRealParent, lstatOrNull, resolveLinkInTree, tempPathFor } from './fsops.js';
import { isTempName } from './paths.js';
import type { FileTombstones } from './file-tombstones.js';
import { keepPrevious, moveToQuarantine, newQuarantineId, type ReceivedRecords } from './quarantine.js';
import { scanTree, sha256File, type HashCache } from './scan.js';

export interface ReceiverTree {
  cfg: FilesTreeConfig;
  root: string;
  excluded: (rel: string) => boolean;
}

/** Per-request context: the quarantine id is created on first use. */
export interface ApplyCtx {
  tree: ReceiverTree;
  rootReal: string;
  qid?: string;
  quarantined: number;
  /** Id of this batch's previous-copies folder, created on first use. */
  pid?: string;
  dirs: Set<string>;
  /** Parent directories already checked in this batch. */
  verified: Map<string, Promise<string>>;
  /** The batch created a link: every link of the tree is checked again at the end. */
  links?: boolean;
}

export class TreeWriter {
  constructor(
    private readonly records: ReceivedRecords,
    private readonly cache: HashCache,
    private readonly clock: Clock,
    /** The receiver's options (read when used, like the receiver did). */
    private readonly opts: { readonly quarantineDir?: string; readonly tombstones?: FileTombstones },
    /** The receiver's status counters this writer advances. */
    private readonly st: { filesApplied: number; keptPrevious: number },
  ) {}

  /**
   * A link created later can change where an earlier one leads (`b -> .` makes `l -> b/../x` leave the
   * tree): after a batch that adds links, follow every link of the tree again and remove any that now
   * leads outside it. `refused` reports each removed link (the receiver's refusal event).
   */
  async recheckLinks(ctx: ApplyCtx, refused: (path: string, err: unknown) => void): Promise<void> {
    const t = ctx.tree;
    for (const e of await scanTree(t.root, t.excluded, this.cache)) {
      if (e.type !== 'link') continue;
      const abs = posix.join(t.root, e.path);
      try {
        await checkRealParent(ctx.rootReal, abs, e.path);
        await resolveLinkInTree(ctx.rootReal, posix.join(ctx.rootReal, posix.dirname(e.path)), e.target, e.path);
      } catch (err) {
        if (!(err instanceof HaError) || err.code !== 'FILES_PATH_OUTSIDE_TREE') throw err;
        await rm(abs, { force: true });
        this.records.delete(t.cfg.name, e.path);
        refused(e.path, err);
      }
    }
  }

  async finalizeFile(ctx: ApplyCtx, rel: string, abs: string, tmp: string, sha256: string, mode: number, mtimeMs: number): Promise<void> {
    const cur = await lstatOrNull(abs);
    if (cur?.isDirectory()) await this.remove(ctx, rel, abs);
    else if (cur?.isFile()) await this.quarantineIfDiverged(ctx, rel, abs, sha256);
    // setuid, setgid and sticky bits never cross: a file sync must not plant a setuid binary.
    await chmod(tmp, mode & 0o777);
    const mtime = mtimeMs / 1000;
    await utimes(tmp, mtime, mtime);
    await rename(tmp, abs);
    this.records.set(ctx.tree.cfg.name, rel, sha256);
    this.opts.tombstones?.written(ctx.tree.cfg.name, rel);
    this.st.filesApplied++;
  }

  async applyDir(ctx: ApplyCtx, rel: string, abs: string, mode: number): Promise<void> {
    const cur = await lstatOrNull(abs);
    if (cur && !cur.isDirectory()) await this.remove(ctx, rel, abs);
    await ensureParent(ctx.rootReal, abs, rel);
    await mkdir(abs, { recursive: true });
    await chmod(abs, mode & 0o777);
  }

  async applyLink(ctx: ApplyCtx, rel: string, abs: string, target: string): Promise<void> {
    const dir = await ensureParent(ctx.rootReal, abs, rel);
    await resolveLinkInTree(ctx.rootReal, posix.join(ctx.rootReal, posix.dirname(rel)), target, rel);
    const cur = await lstatOrNull(abs);
    if (cur?.isDirectory()) await this.remove(ctx, rel, abs);
    else if (cur?.isFile()) await this.quarantineIfDiverged(ctx, rel, abs, null);
    const tmp = tempPathFor(abs);
    await symlink(target, tmp);
    await rename(tmp, abs);
    this.records.delete(ctx.tree.cfg.name, rel);
    ctx.dirs.add(dir);
  }

  /** Remove whatever is at `abs` (files below a directory are checked for divergence one by one). */
  async remove(ctx: ApplyCtx, rel: string, abs: string): Promise<boolean> {
    const cur = await lstatOrNull(abs);
    if (!cur) return false;
    if (cur.isDirectory()) {
      for (const name of await readdir(abs)) await this.remove(ctx, `${rel}/${name}`, posix.join(abs, name));
      await rm(abs, { recursive: true, force: true });
    } else {
      if (cur.isFile() && !isTempName(rel)) await this.quarantineIfDiverged(ctx, rel, abs, null);
      await rm(abs, { force: true });
    }
    this.records.delete(ctx.tree.cfg.name, rel);
    this.cache.forget(abs);
    return true;
  }

  /**
   * Move the local file aside when its content is neither what we last received nor what is arriving.
   * A file with no record (never received) counts as written here, so it is kept too.
   */
  private async quarantineIfDiverged(ctx: ApplyCtx, rel: string, abs: string, incomingSha: string | null): Promise<void> {
    const qdir = this.opts.quarantineDir;
    if (!qdir) return;
    const local = await sha256File(abs);
    if (local === incomingSha) return;
    if (local === this.records.get(ctx.tree.cfg.name, rel)) {
      // As received: kept too (a hard link, so the live file is replaced atomically), so whatever a
      // mistake on the primary overwrites or deletes here can be restored.
      ctx.pid ??= newQuarantineId(this.clock.nowMs());
      await keepPrevious(qdir, ctx.pid, ctx.tree.cfg.name, rel, abs);
      this.st.keptPrevious++;
      return;
    }
    ctx.qid ??= newQuarantineId(this.clock.nowMs());
    await moveToQuarantine(qdir, ctx.qid, ctx.tree.cfg.name, rel, abs);
    ctx.quarantined++;
  }
}

/** ensureParent, remembered per batch until an op that could change directories runs. */
export async function parentOf(ctx: ApplyCtx, abs: string, rel: string): Promise<string> {
  const dir = posix.dirname(abs);
  let p = ctx.verified.get(dir);
  if (!p) {
    p = ensureParent(ctx.rootReal, abs, rel);
    ctx.verified.set(dir, p);
    p.catch(() => ctx.verified.delete(dir));
  }
  return p;
}

/**
 * A large file streamed by the primary, hashed while written to a temp file next to `abs` and fsynced;
 * returns the temp file. On a checksum mismatch (or any failure) the temp file is removed and nothing
 * is replaced.
 */
export async function streamToTemp(body: Readable, abs: string, rel: string, sha256: string): Promise<string> {
  const tmp = tempPathFor(abs);
  const h = createHash('sha256');
  const hasher = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      h.update(chunk);
      cb(null, chunk);
    },
  });
  try {
    await pipeline(body, hasher, createWriteStream(tmp, { flags: 'wx', mode: 0o600 }));
    const got = h.digest('hex');
    if (got !== sha256) throw new HaError('FILES_FAILED', `checksum mismatch for ${rel} (sent ${sha256}, got ${got}); the file was not replaced and will be resent`, { path: rel });
    const fh = await open(tmp, 'r+');
    await fh.sync().finally(() => fh.close());
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
  return tmp;
}
