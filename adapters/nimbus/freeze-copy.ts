/**
 * A point-in-time, crash-consistent copy of a directory that a running JVM writes (embedded Derby):
 * bring the copy up to date while the service runs, then freeze the JVM (SIGSTOP, every thread
 * confirmed stopped), bring it up to date once more, and resume (SIGCONT). The frozen moment is the
 * copy point: the copy holds exactly the bytes the service had written by then (the page cache
 * included), which is what a kill -9 at that moment would leave, and Derby's crash recovery turns it
 * into a consistent database. The pause is bounded: past `maxPauseMs` the service is resumed and the
 * round is abandoned (the next one starts from what was copied).
 *
 * Up to date is per 4 KiB block, not per file: a file whose stat changed is read next to its copy and
 * only the blocks that differ are written (Derby keeps a table in one file, so a few changed pages must
 * not mean copying the table). The comparison is a memcmp of the two files, about 2 × the file size
 * read from the page cache; hashing the source instead was slower here (sha256 ~0.6 GB/s against
 * ~2-4 GB/s for the reads). Each block's sha256 is kept, recomputed only for blocks written, and the
 * file digest is derived from them (blocks.ts), so shipping a delta never re-hashes a whole file.
 *
 * The frozen pass uses synchronous I/O and never yields: the sidecar's event loop is busy for the
 * freeze (at most maxPauseMs), and nothing else the process does can stretch the service's pause.
 */
import { copyFile, mkdir, open } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { closeSync, copyFileSync, fstatSync, ftruncateSync, openSync, readSync, readdirSync, readFileSync, rmSync, statSync, writeSync, type Dirent } from 'node:fs';
import { dirname, join } from 'node:path';
import { DELTA_BLOCK, blockCount, blockRuns, diffBlocks, fileDigest, walkFiles } from '../../src/ports.js';

/** What a file looked like when it was last copied. */
export interface CopyRecord {
  size: number;
  mtimeNs: bigint;
  ctimeNs: bigint;
  ino: number;
  /** Wall clock (ns) when the copy began. */
  copiedAtNs: bigint;
}

/** The copy's block digests of one file (32 bytes per block) and the blocks written but not hashed yet. */
export interface FileBlocks {
  size: number;
  digests: Buffer;
  pending: Set<number>;
}

/** Kept between rounds for one directory: per-file records, block digests, and what changed since reported. */
export interface FreezeCopyState {
  records: Map<string, CopyRecord>;
  blocks: Map<string, FileBlocks>;
  /** Blocks written into the copy since the last successful freezeCopy returned (reported then). */
  changed: Map<string, Set<number>>;
  /** Files removed from the copy since then. */
  removed: Set<string>;
  /** No successful copy has been reported yet (the copy started empty). */
  fresh: boolean;
}

export const newFreezeCopyState = (): FreezeCopyState => ({ records: new Map(), blocks: new Map(), changed: new Map(), removed: new Set(), fresh: true });

export interface FreezeCopyOptions {
  source: string;
  target: string;
  state: FreezeCopyState;
  /** The service JVM's PID, or null when it is not running (then nothing needs freezing). */
  pid: () => Promise<number | null>;
  /** Longest freeze; past it the JVM is resumed and the round fails with FreezeBudgetExceeded. */
  maxPauseMs: number;
  /** Relative paths to leave out (lock files). */
  exclude?: (relative: string) => boolean;
  /** Unpaused passes before the freeze (each copies what changed during the previous one; default 1). */
  warmPasses?: number;
}

export interface CopiedFile {
  path: string;
  size: number;
  /** fileDigest() of the copy. */
  digest: string;
}

export interface FreezeCopyResult {
  /** Wall-clock ms of the copy point (the freeze; or the end of the copy when no JVM ran). */
  takenAt: number;
  /** How long the JVM was stopped (0 when it was not running). */
  pauseMs: number;
  frozen: boolean;
  /** Files (whole or partly) written before and during the freeze. */
  copiedUnpaused: number;
  copiedPaused: number;
  /** Bytes written into the copy under the freeze. */
  bytesPaused: number;
  removed: number;
  /** Every file of the copy, with its digest. */
  files: CopiedFile[];
  /** Blocks written since the previous successful call, per file (every block of a new file). */
  changed: Map<string, number[]>;
  /** Files gone since the previous successful call. */
  gone: string[];
  /** The copy started empty (the first call on this state): `changed` is everything. */
  fresh: boolean;
}

export class FreezeBudgetExceeded extends Error {
  constructor(readonly pauseMs: number, readonly maxPauseMs: number) {
    super(`the frozen copy took longer than ${maxPauseMs} ms (resumed after ${pauseMs.toFixed(1)} ms); retried next round`);
    this.name = 'FreezeBudgetExceeded';
  }
}

/** A file modified within this much of its copy may have changed again in the same timestamp tick. */
const RACY_NS = 100_000_000n;
const nowNs = (): bigint => BigInt(Date.now()) * 1_000_000n + (process.hrtime.bigint() % 1_000_000n);
/** How long before maxPauseMs the frozen pass gives up, so that the JVM is running again within it. */
const STOP_MARGIN_MS = 8;
/** Compared per chunk: 1 MiB reads of both files in parallel measured fastest (128 KiB-2 MiB tried). */
const CHUNK = 1 << 20;

const DEFAULT_EXCLUDE = (rel: string) => /(^|\/)(db\.lck|dbex\.lck)$/.test(rel);

const walk = async (root: string, exclude: (rel: string) => boolean): Promise<string[]> => (await walkFiles(root, exclude)).map((e) => e.path);

function needsCopy(rec: CopyRecord | undefined, st: { size: number; mtimeNs: bigint; ctimeNs: bigint; ino: number }): boolean {
  if (!rec) return true;
  if (rec.size !== st.size || rec.mtimeNs !== st.mtimeNs || rec.ctimeNs !== st.ctimeNs || rec.ino !== st.ino) return true;
  // Changed again within the same timestamp tick as the copy: the stat cannot tell, so copy again.
  return rec.mtimeNs >= rec.copiedAtNs - RACY_NS || rec.ctimeNs >= rec.copiedAtNs - RACY_NS;
}

function markChanged(state: FreezeCopyState, rel: string, blocks: Iterable<number>): void {
  let fb = state.blocks.get(rel);
  if (!fb) state.blocks.set(rel, (fb = { size: 0, digests: Buffer.alloc(0), pending: new Set() }));
  let ch = state.changed.get(rel);
  if (!ch) state.changed.set(rel, (ch = new Set()));
  for (const b of blocks) {
    fb.pending.add(b);
    ch.add(b);
  }
}

function resize(state: FreezeCopyState, rel: string, size: number): void {
  const fb = state.blocks.get(rel)!;
  if (fb.size === size) return;
  const n = blockCount(size);
  const d = Buffer.alloc(n * 32);
  fb.digests.copy(d, 0, 0, Math.min(fb.digests.length, d.length));
  // A last block cut short or grown changed whatever its bytes compare to.
  const last = [...(n ? [n - 1] : []), ...(fb.size ? [blockCount(fb.size) - 1] : [])].filter((b) => b < n);
  fb.size = size;
  fb.digests = d;
  for (const b of [...fb.pending]) if (b >= n) fb.pending.delete(b);
  markChanged(state, rel, last);
}

/**
 * Writes into `dst` the blocks of `src` that differ from it (1 MiB at a time); returns the bytes written.
 * Synchronous I/O: under the freeze every thread-pool round trip counts (~40 µs against ~5 for a 4 KiB
 * write, far more when the pool or the event loop is busy), and nothing else may run in between; unfrozen
 * (`yieldEvery` chunks) it lets the event loop run.
 */
async function copyChangedBlocks(src: number, dst: number, size: number, state: FreezeCopyState, rel: string, checkDeadline: () => void, yieldEvery: number): Promise<number> {
  const a = Buffer.allocUnsafe(CHUNK);
  const b = Buffer.allocUnsafe(CHUNK);
  let written = 0;
  for (let pos = 0, n = 1; pos < size; pos += CHUNK, n++) {
    checkDeadline();
    const want = Math.min(CHUNK, size - pos);
    const ra = readSync(src, a, 0, want, pos);
    const rb = readSync(dst, b, 0, want, pos);
    const cur = a.subarray(0, ra);
    const changed = diffBlocks(cur, b.subarray(0, rb), pos);
    for (const r of blockRuns(changed, pos + cur.length)) {
      writeSync(dst, cur, r.offset - pos, r.length, r.offset);
      written += r.length;
    }
    if (changed.length) markChanged(state, rel, changed);
    if (ra < want) break; // the source shrank meanwhile: the next pass sees its new stat
    if (yieldEvery && n % yieldEvery === 0) await new Promise((r) => setImmediate(r));
  }
  return written;
}

/** Files under root (relative, sorted), synchronously. */
function walkSync(root: string, exclude: (rel: string) => boolean): string[] {
  const out: string[] = [];
  const visit = (rel: string) => {
    let names: Dirent[];
    try {
      names = readdirSync(join(root, rel), { withFileTypes: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw err;
    }
    for (const d of names) {
      const r = rel ? `${rel}/${d.name}` : d.name;
      if (exclude(r)) continue;
      if (d.isDirectory()) visit(r);
      else if (d.isFile()) out.push(r);
    }
  };
  visit('');
  return out.sort((x, y) => (x < y ? -1 : x > y ? 1 : 0));
}

/**
 * One pass: bring every file whose stat differs from its record (or is racy) up to date; drop vanished
 * files. Frozen (deadline set), it runs without yielding to the event loop, bounded by the deadline.
 */
async function pass(o: FreezeCopyOptions, exclude: (rel: string) => boolean, deadline: number | null): Promise<{ copied: number; bytes: number; removed: number; files: number }> {
  const checkDeadline = () => {
    if (deadline !== null && performance.now() > deadline) throw new FreezeBudgetExceeded(performance.now() - (deadline - o.maxPauseMs + STOP_MARGIN_MS), o.maxPauseMs);
  };
  const yieldEvery = deadline === null ? 16 : 0;
  const files = deadline === null ? await walk(o.source, exclude) : walkSync(o.source, exclude);
  const present = new Set(files);
  let copied = 0;
  let bytes = 0;
  let removed = 0;
  for (const rel of files) {
    checkDeadline();
    const src = join(o.source, rel);
    const st = statSync(src, { bigint: true, throwIfNoEntry: false });
    if (!st) continue;
    const cur = { size: Number(st.size), mtimeNs: st.mtimeNs, ctimeNs: st.ctimeNs, ino: Number(st.ino) };
    const rec = o.state.records.get(rel);
    if (!needsCopy(rec, cur)) continue;
    const copiedAtNs = nowNs();
    const dst = join(o.target, rel);
    const known = rec !== undefined && o.state.blocks.has(rel);
    if (!known) {
      await mkdir(dirname(dst), { recursive: true });
      if (deadline === null) await copyFile(src, dst);
      else copyFileSync(src, dst);
      const size = statSync(dst).size;
      o.state.blocks.delete(rel);
      markChanged(o.state, rel, []);
      resize(o.state, rel, size);
      markChanged(o.state, rel, Array.from({ length: blockCount(size) }, (_, i) => i));
      bytes += size;
    } else {
      let sh: number;
      try {
        sh = openSync(src, 'r');
      } catch {
        continue;
      }
      try {
        const dh = openSync(dst, 'r+');
        try {
          const size = fstatSync(sh).size;
          bytes += await copyChangedBlocks(sh, dh, size, o.state, rel, checkDeadline, yieldEvery);
          if (fstatSync(dh).size !== size) ftruncateSync(dh, size);
          resize(o.state, rel, size);
        } finally {
          closeSync(dh);
        }
      } finally {
        closeSync(sh);
      }
    }
    o.state.records.set(rel, { ...cur, copiedAtNs });
    o.state.removed.delete(rel);
    copied++;
  }
  for (const rel of [...o.state.records.keys()]) {
    if (present.has(rel)) continue;
    rmSync(join(o.target, rel), { force: true });
    o.state.records.delete(rel);
    o.state.blocks.delete(rel);
    o.state.changed.delete(rel);
    o.state.removed.add(rel);
    removed++;
  }
  return { copied, bytes, removed, files: files.length };
}

/** Hashes the blocks written since they were last hashed and returns every file with its digest. */
async function digestCopy(o: FreezeCopyOptions): Promise<CopiedFile[]> {
  const out: CopiedFile[] = [];
  const buf = Buffer.allocUnsafe(CHUNK);
  for (const [rel, fb] of [...o.state.blocks].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    if (fb.pending.size) {
      const fh = await open(join(o.target, rel), 'r');
      try {
        let n = 0;
        for (const r of blockRuns(fb.pending, fb.size)) {
          const bytesRead = readSync(fh.fd, buf, 0, r.length, r.offset);
          if (++n % 256 === 0) await new Promise((res) => setImmediate(res));
          if (bytesRead !== r.length) throw new Error(`${rel}: the copy is shorter than recorded`);
          for (let p = 0; p < r.length; p += DELTA_BLOCK) {
            createHash('sha256').update(buf.subarray(p, Math.min(p + DELTA_BLOCK, r.length))).digest().copy(fb.digests, ((r.offset + p) / DELTA_BLOCK) * 32);
          }
        }
      } finally {
        await fh.close();
      }
      fb.pending.clear();
    }
    out.push({ path: rel, size: fb.size, digest: fileDigest(fb.size, fb.digests) });
  }
  return out;
}

function report(o: FreezeCopyOptions): Pick<FreezeCopyResult, 'changed' | 'gone' | 'fresh'> {
  const r = { changed: new Map([...o.state.changed].map(([k, v]) => [k, [...v]])), gone: [...o.state.removed], fresh: o.state.fresh };
  o.state.changed.clear();
  o.state.removed.clear();
  o.state.fresh = false;
  return r;
}

/** Every thread of the process is stopped (state T or t in /proc/PID/task/TID/stat); synchronous, as the frozen pass. */
function allThreadsStopped(pid: number): boolean {
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    let s: string;
    try {
      s = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
    } catch {
      continue;
    }
    const state = s.slice(s.lastIndexOf(')') + 2, s.lastIndexOf(')') + 3);
    if (state !== 'T' && state !== 't' && state !== 'Z' && state !== 'X') return false;
  }
  return true;
}

export async function freezeCopy(o: FreezeCopyOptions): Promise<FreezeCopyResult> {
  const exclude = o.exclude ?? DEFAULT_EXCLUDE;
  await mkdir(o.target, { recursive: true });
  let copiedUnpaused = 0;
  let removed = 0;
  for (let i = 0; i < (o.warmPasses ?? 1); i++) {
    const r = await pass(o, exclude, null);
    copiedUnpaused += r.copied;
    removed += r.removed;
    if (r.copied === 0) break;
  }
  const pid = await o.pid();
  if (pid === null) {
    // No JVM: the files are at rest. One more pass catches a service that stopped mid-copy.
    const r = await pass(o, exclude, null);
    const takenAt = Date.now();
    const files = await digestCopy(o);
    return { takenAt, pauseMs: 0, frozen: false, copiedUnpaused: copiedUnpaused + r.copied, copiedPaused: 0, bytesPaused: 0, removed: removed + r.removed, files, ...report(o) };
  }
  const t0 = performance.now();
  const takenAt = Date.now();
  let frozen: { copied: number; bytes: number; removed: number; pauseMs: number };
  process.kill(pid, 'SIGSTOP');
  try {
    // Give up a chunk early: the check runs between 1 MiB chunks (a few ms each under load), and the resume follows.
    const deadline = t0 + o.maxPauseMs - STOP_MARGIN_MS;
    while (!allThreadsStopped(pid)) {
      if (performance.now() > deadline) throw new FreezeBudgetExceeded(performance.now() - t0, o.maxPauseMs);
    }
    const r = await pass(o, exclude, deadline);
    frozen = { ...r, pauseMs: performance.now() - t0 };
  } finally {
    try {
      process.kill(pid, 'SIGCONT');
    } catch {
      // The JVM died while frozen: nothing to resume.
    }
  }
  // Hashing the written blocks waits until the service runs again.
  const files = await digestCopy(o);
  return { takenAt, pauseMs: frozen.pauseMs, frozen: true, copiedUnpaused, copiedPaused: frozen.copied, bytesPaused: frozen.bytes, removed: removed + frozen.removed, files, ...report(o) };
}
