/**
 * The standby's pristine mirror of a Derby unit (never booted) and its record (mirror.json: every file's
 * size and block digest, and whether a patch was cut off), patched with the primary's deltas; and the
 * boot directory, brought level with the mirror by comparing blocks before each boot.
 *
 * The record says what the mirror holds without re-reading it: a patch marks it `patching` (fsynced)
 * before it writes anything and `clean` with the new digests after the files are fsynced (finalize,
 * after the copy is installed: off the recovery point's path), so a kill -9 mid-patch leaves a record
 * that matches no base and the primary sends whole files. After an install, the old copy (the next
 * boot directory) is brought level with the mirror between rounds; the next unit then patches mirror
 * and boot directory with the same writes, and only a level that did not finish costs a comparison.
 */
import { createHash } from 'node:crypto';
import { writeSync } from 'node:fs';
import { copyFile, mkdir, open, readFile, rename, rm, stat, type FileHandle } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { DELTA_BLOCK, MAX_RECORD_BYTES, RECORD_HEADER_BYTES, baseAccepts, blockCount, blockRuns, checkRecord, decodeRecordHeader, diffBlocks, fileDigest, manifestDigest, type UnitFile } from './blocks.js';
import { NimbusStateError } from './types.js';
import { safeRelative, sha256File, walkFiles } from './tree.js';

export interface DerbyUnit {
  snapshotId: string;
  takenAt: number;
  files: UnitFile[];
  delta: { sha256: string; size: number } | null;
  manifestDigest: string;
}

export interface MirrorRecord {
  state: 'clean' | 'patching';
  snapshotId: string | null;
  files: Record<string, { size: number; digest: string }>;
}

interface Memo {
  key: string;
  digest: string;
}

const CHUNK = 1 << 20;
export const yieldLoop = () => new Promise<void>((r) => setImmediate(r));
/** A file written within this much of its stat may change again in the same timestamp tick. */
const RACY_NS = 100_000_000n;
const statKey = (s: { size: bigint; mtimeNs: bigint; ctimeNs: bigint; ino: bigint }) => `${s.size}:${s.mtimeNs}:${s.ctimeNs}:${s.ino}`;

async function fsyncPath(p: string): Promise<void> {
  const fh = await open(p, 'r').catch(() => null);
  if (!fh) return;
  try {
    await fh.sync();
  } catch {
    // some filesystems refuse fsync on directories
  } finally {
    await fh.close();
  }
}

/** fileDigest() of a file on disk, read 1 MiB at a time. */
export async function digestFile(path: string): Promise<{ size: number; digest: string }> {
  const fh = await open(path, 'r');
  try {
    const size = (await fh.stat()).size;
    const digests = Buffer.allocUnsafe(blockCount(size) * 32);
    const buf = Buffer.allocUnsafe(CHUNK);
    for (let pos = 0; pos < size; pos += CHUNK) {
      const { bytesRead } = await fh.read(buf, 0, Math.min(CHUNK, size - pos), pos);
      if (bytesRead !== Math.min(CHUNK, size - pos)) throw new Error(`${path} changed while it was read`);
      for (let p = 0; p < bytesRead; p += DELTA_BLOCK) createHash('sha256').update(buf.subarray(p, Math.min(p + DELTA_BLOCK, bytesRead))).digest().copy(digests, ((pos + p) / DELTA_BLOCK) * 32);
    }
    return { size, digest: fileDigest(size, digests) };
  } finally {
    await fh.close();
  }
}

export class DerbyMirror {
  readonly mirror: string;
  readonly incoming: string;
  private rec: MirrorRecord | null | undefined;
  /** What this side wrote last into the boot directory (fresh) and the installed one, per file. */
  private memo = { fresh: new Map<string, Memo>(), installed: new Map<string, Memo>() };
  /** The mirror snapshot the boot directory was last brought level with (null: unknown, compare). */
  private levelAt: string | null = null;

  constructor(private readonly root: string) {
    this.mirror = join(root, 'mirror');
    this.incoming = join(root, 'incoming');
  }

  async record(): Promise<MirrorRecord | null> {
    if (this.rec === undefined) {
      const text = await readFile(join(this.root, 'mirror.json'), 'utf8').catch(() => null);
      try {
        this.rec = text === null ? null : (JSON.parse(text) as MirrorRecord);
      } catch {
        this.rec = null;
      }
    }
    return this.rec;
  }

  private async save(rec: MirrorRecord): Promise<void> {
    await mkdir(this.root, { recursive: true });
    const tmp = join(this.root, 'mirror.json.tmp');
    const fh = await open(tmp, 'w');
    try {
      await fh.writeFile(JSON.stringify(rec));
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, join(this.root, 'mirror.json'));
    await fsyncPath(this.root);
    this.rec = rec;
  }

  /** Forget what the mirror holds (the next unit must bring whole files). */
  async invalidate(): Promise<void> {
    const rec = await this.record();
    await this.save({ state: 'patching', snapshotId: rec?.snapshotId ?? null, files: rec?.files ?? {} });
  }

  /** The mirror's files and digests as the record has them; digest null when unknown (no record, cut-off patch). */
  async manifest(): Promise<{ path: string; size: number; mtimeMs: number; digest: string | null }[]> {
    const rec = await this.record();
    if (rec && rec.state === 'clean') return Object.entries(rec.files).map(([path, f]) => ({ path, size: f.size, mtimeMs: 0, digest: f.digest }));
    return (await walkFiles(this.mirror)).map((e) => ({ path: e.path, size: e.size, mtimeMs: e.mtimeMs, digest: null }));
  }

  incomingFile(rel: string): string {
    return join(this.incoming, 'files', safeRelative(rel));
  }

  deltaFile(snapshotId: string): string {
    return join(this.incoming, `${safeRelative(snapshotId)}.delta`);
  }

  /**
   * Checks the unit against the record: every base known, every whole file and the delta present and
   * intact. Refusals are 409 with a reason; nothing is touched by a refused unit.
   */
  async check(u: DerbyUnit, sha256Of: (abs: string) => Promise<string | null>): Promise<void> {
    if (manifestDigest(u) !== u.manifestDigest) throw new NimbusStateError('the unit manifest does not match its digest: resend', 400);
    const rec = await this.record();
    const have = (p: string) => (rec && rec.state === 'clean' ? rec.files[p]?.digest : null);
    const paths = new Set<string>();
    const mismatch: string[] = [];
    for (const f of u.files) {
      const p = safeRelative(f.path);
      if (paths.has(p)) throw new NimbusStateError(`${p} is listed twice`, 400);
      paths.add(p);
      if (!baseAccepts(f.mode, have(p), f.digest, f.bases)) mismatch.push(p);
    }
    if (mismatch.length) {
      throw new NimbusStateError(`the mirror is not at the base the delta expects for ${mismatch.length} file(s) (${mismatch.slice(0, 3).join(', ')})${rec?.state === 'patching' ? ', a patch was cut off' : ''}: send whole files`, 409, 'base-mismatch');
    }
    for (const f of u.files.filter((x) => x.mode === 'whole')) {
      if (!f.sha256 || (await sha256Of(this.incomingFile(f.path))) !== f.sha256) throw new NimbusStateError(`${f.path}: the whole file is missing or different: resend`, 409, 'delta-missing');
    }
    if (u.files.some((f) => f.mode === 'delta')) {
      const deltaPath = this.deltaFile(u.snapshotId);
      // Hashed directly, not through a cache keyed by path: every unit's delta has a name of its own.
      const ok = u.delta !== null && (await stat(deltaPath).then((st) => st.size === u.delta!.size, () => false)) && (await sha256File(deltaPath).catch(() => null)) === u.delta.sha256;
      if (!ok) throw new NimbusStateError(`the delta of ${u.snapshotId} is missing or garbled: send whole files`, 409, 'delta-missing');
    }
  }

  /**
   * Patches the mirror with a checked unit (records into files, whole files renamed in, files the unit
   * lacks removed), and `level` too when given (the boot directory, known equal to the mirror's base):
   * the same writes, so it needs no comparison. The record is `patching` on disk until finalize().
   */
  async apply(u: DerbyUnit, level: string | null): Promise<{ records: number; bytes: number; touched: string[] }> {
    const rec = await this.record();
    this.levelAt = null;
    await this.save({ state: 'patching', snapshotId: rec?.snapshotId ?? null, files: rec?.files ?? {} });
    const handles = new Map<number, { mirror: FileHandle; level: FileHandle | null }>();
    const handle = async (i: number) => {
      let h = handles.get(i);
      if (!h) {
        const p = safeRelative(u.files[i].path);
        h = { mirror: await open(join(this.mirror, p), 'r+'), level: null };
        handles.set(i, h);
        if (level) h.level = await open(join(level, p), 'r+');
      }
      return h;
    };
    let records = 0;
    let bytes = 0;
    try {
      if (u.files.some((f) => f.mode === 'delta')) {
        const dh = await open(this.deltaFile(u.snapshotId), 'r');
        try {
          // Read ahead in large chunks (records are ≤ 1 MiB, so one refill always holds the next one).
          const buf = Buffer.allocUnsafe(2 * MAX_RECORD_BYTES + RECORD_HEADER_BYTES);
          let bufAt = 0;
          let bufLen = 0;
          const size = u.delta!.size;
          const take = async (pos: number, n: number): Promise<Buffer> => {
            if (pos < bufAt || pos + n > bufAt + bufLen) {
              bufAt = pos;
              bufLen = (await dh.read(buf, 0, Math.min(buf.length, size - pos), pos)).bytesRead;
              if (n > bufLen) throw new Error('truncated record');
            }
            return buf.subarray(pos - bufAt, pos - bufAt + n);
          };
          for (let pos = 0; pos < size; ) {
            const r = decodeRecordHeader(await take(pos, RECORD_HEADER_BYTES));
            const f = u.files[r.file];
            if (!f || f.mode !== 'delta' || r.offset + r.length > f.size) throw new Error(`record for file ${r.file} at ${r.offset} does not fit the unit`);
            const data = await take(pos + RECORD_HEADER_BYTES, r.length);
            checkRecord(r, data);
            const h = await handle(r.file);
            // Thousands of scattered 4 KiB writes: synchronous ones cost ~5 µs each, a thread-pool
            // round trip ~40 µs and far more when the pool is busy; yield now and then instead.
            writeSync(h.mirror.fd, data, 0, r.length, r.offset);
            if (h.level) writeSync(h.level.fd, data, 0, r.length, r.offset);
            if (++records % 256 === 0) await yieldLoop();
            bytes += r.length;
            pos += RECORD_HEADER_BYTES + r.length;
          }
        } finally {
          await dh.close();
        }
      }
      for (const [i, f] of u.files.entries()) {
        if (f.mode !== 'delta') continue;
        const h = await handle(i);
        for (const fh of [h.mirror, h.level]) if (fh && (await fh.stat()).size !== f.size) await fh.truncate(f.size);
      }
    } catch (err) {
      throw new NimbusStateError(`the delta of ${u.snapshotId} could not be applied (${(err as Error).message}): send whole files`, 409, 'delta-missing');
    } finally {
      for (const h of handles.values()) {
        await h.mirror.close().catch(() => undefined);
        await h.level?.close().catch(() => undefined);
      }
    }
    const touched = u.files.filter((f) => f.mode !== 'same').map((f) => safeRelative(f.path));
    for (const f of u.files) {
      if (f.mode !== 'whole') continue;
      const p = safeRelative(f.path);
      const dst = join(this.mirror, p);
      await mkdir(dirname(dst), { recursive: true });
      await rename(this.incomingFile(p), dst);
      if (level) {
        await mkdir(dirname(join(level, p)), { recursive: true });
        await copyFile(dst, join(level, p));
      }
    }
    const paths = new Set(u.files.map((f) => safeRelative(f.path)));
    // A clean record lists the mirror's files (and a level boot directory's): no need to list the directories.
    const stale = async (dir: string) => (rec?.state === 'clean' ? Object.keys(rec.files) : (await walkFiles(dir)).map((e) => e.path)).filter((p) => !paths.has(p));
    for (const p of await stale(this.mirror)) await rm(join(this.mirror, p), { force: true });
    if (level) for (const p of await stale(level)) await rm(join(level, p), { force: true });
    for (const p of touched) this.memo.fresh.delete(p);
    // In memory the mirror holds the unit now; on disk the record says so only after finalize().
    this.rec = { state: 'clean', snapshotId: u.snapshotId, files: Object.fromEntries(u.files.map((f) => [safeRelative(f.path), { size: f.size, digest: f.digest }])) };
    this.levelAt = level ? u.snapshotId : null;
    await rm(this.incoming, { recursive: true, force: true });
    return { records, bytes, touched };
  }

  /** Makes the patch durable: fsync the files written, then the record (clean, with the unit's digests). */
  async finalize(touched: string[]): Promise<void> {
    const rec = this.rec;
    if (!rec) return;
    try {
      for (const p of touched) await fsyncPath(join(this.mirror, p));
      for (const d of new Set(touched.map((p) => dirname(join(this.mirror, p))))) await fsyncPath(d);
      await this.save(rec);
    } catch (err) {
      this.rec = undefined; // read back from disk: patching
      throw err;
    }
  }

  /** Brings the boot directory level with the mirror (between rounds), so the next unit patches it directly. */
  async level(dir: string): Promise<void> {
    this.levelAt = null;
    await this.syncTo(dir);
    this.levelAt = this.rec?.snapshotId ?? null;
  }

  /** Re-reads every mirror file and lists those whose digest is not the record's (the periodic deep check; nothing to check without a clean record). */
  async deepVerify(): Promise<string[]> {
    const rec = await this.record();
    if (!rec || rec.state !== 'clean') return [];
    const bad: string[] = [];
    for (const [p, f] of Object.entries(rec.files)) {
      const got = await digestFile(join(this.mirror, p)).catch(() => null);
      if (!got || got.size !== f.size || got.digest !== f.digest) bad.push(p);
    }
    return bad;
  }

  /**
   * Makes `dir` hold exactly the mirror's files: files this side wrote and nobody touched since (same
   * stat, same digest in the record) are skipped; any other is compared block by block with the mirror
   * and only differing blocks are written (a recycled boot directory differs by what the last boot and
   * the deltas since changed); files the mirror lacks are removed. Returns the bytes read and written.
   */
  async syncTo(dir: string): Promise<{ compared: number; written: number }> {
    const rec = await this.record();
    if (!rec || rec.state !== 'clean') throw new NimbusStateError('the mirror has no clean record', 409, 'base-mismatch');
    const memo = this.memo.fresh;
    let compared = 0;
    let written = 0;
    await mkdir(dir, { recursive: true });
    for (const e of await walkFiles(dir)) {
      if (!(e.path in rec.files)) {
        await rm(join(dir, e.path), { force: true });
        memo.delete(e.path);
      }
    }
    const a = Buffer.allocUnsafe(CHUNK);
    const b = Buffer.allocUnsafe(CHUNK);
    for (const [p, f] of Object.entries(rec.files)) {
      const src = join(this.mirror, p);
      const dst = join(dir, p);
      const st = await stat(dst, { bigint: true }).catch(() => null);
      const m = memo.get(p);
      if (st && m && m.key === statKey(st) && m.digest === f.digest) continue;
      if (!st || !st.isFile()) {
        await mkdir(dirname(dst), { recursive: true });
        await rm(dst, { recursive: true, force: true });
        await copyFile(src, dst);
        written += f.size;
      } else {
        const sh = await open(src, 'r');
        const dh = await open(dst, 'r+');
        try {
          for (let pos = 0; pos < f.size; pos += CHUNK) {
            const want = Math.min(CHUNK, f.size - pos);
            const [ra, rb] = await Promise.all([sh.read(a, 0, want, pos), dh.read(b, 0, want, pos)]);
            if (ra.bytesRead !== want) throw new Error(`${src} is shorter than its record`);
            compared += want;
            const cur = a.subarray(0, want);
            for (const r of blockRuns(diffBlocks(cur, b.subarray(0, rb.bytesRead), pos), pos + want)) {
              writeSync(dh.fd, cur, r.offset - pos, r.length, r.offset);
              written += r.length;
            }
          }
          if ((await dh.stat()).size !== f.size) await dh.truncate(f.size);
        } finally {
          await sh.close();
          await dh.close();
        }
      }
      const after = await stat(dst, { bigint: true });
      // Written just now: a later write in the same timestamp tick would keep this stat, so check it next time.
      const racy = after.mtimeNs >= BigInt(Date.now()) * 1_000_000n - RACY_NS;
      if (racy) memo.delete(p);
      else memo.set(p, { key: statKey(after), digest: f.digest });
    }
    return { compared, written };
  }

  /** The boot directory became the installed copy and the installed one the boot directory. */
  swapped(): void {
    this.memo = { fresh: this.memo.installed, installed: this.memo.fresh };
    this.levelAt = null;
  }

  /** The boot directory equals the mirror at this snapshot (written only by this side since). */
  isLevelAt(snapshotId: string | null | undefined): boolean {
    return this.levelAt !== null && this.levelAt === snapshotId;
  }

  /** The boot directory was booted, removed or replaced: only a comparison tells what it holds. */
  forgetFresh(): void {
    this.levelAt = null;
  }
}
