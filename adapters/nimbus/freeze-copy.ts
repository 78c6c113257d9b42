/**
 * A point-in-time, crash-consistent copy of a directory that a running JVM writes (embedded Derby):
 * copy every changed file while the service runs, copy again what changed meanwhile, then freeze the
 * JVM (SIGSTOP, every thread confirmed stopped), copy only what changed since, and resume (SIGCONT).
 * The frozen moment is the copy point: the copy holds exactly the bytes the service had written by
 * then (the page cache included), which is what a kill -9 at that moment would leave, and Derby's crash
 * recovery turns it into a consistent database. The pause is bounded: past `maxPauseMs` the service is
 * resumed and the round is abandoned (the next one starts from what was copied).
 */
import { copyFile, mkdir, readFile, readdir, rm, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { walkFiles } from '../../src/replication/nimbus-state/tree.js';

/** What a file looked like when it was last copied. */
export interface CopyRecord {
  size: number;
  mtimeNs: bigint;
  ctimeNs: bigint;
  ino: number;
  /** Wall clock (ns) when the copy began. */
  copiedAtNs: bigint;
}

/** Kept between rounds for one directory: per-file records, and what changed since it last shipped. */
export interface FreezeCopyState {
  records: Map<string, CopyRecord>;
  /** Relative paths copied or removed since the standby last acknowledged this unit. */
  dirty: Set<string>;
}

export const newFreezeCopyState = (): FreezeCopyState => ({ records: new Map(), dirty: new Set() });

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
  /** Unpaused passes before the freeze (each copies what changed during the previous one). */
  warmPasses?: number;
}

export interface FreezeCopyResult {
  /** Wall-clock ms of the copy point (the freeze; or the end of the copy when no JVM ran). */
  takenAt: number;
  /** How long the JVM was stopped (0 when it was not running). */
  pauseMs: number;
  frozen: boolean;
  copiedUnpaused: number;
  copiedPaused: number;
  removed: number;
  files: number;
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

const DEFAULT_EXCLUDE = (rel: string) => /(^|\/)(db\.lck|dbex\.lck)$/.test(rel);

const walk = async (root: string, exclude: (rel: string) => boolean): Promise<string[]> => (await walkFiles(root, exclude)).map((e) => e.path);

function needsCopy(rec: CopyRecord | undefined, st: { size: number; mtimeNs: bigint; ctimeNs: bigint; ino: number }): boolean {
  if (!rec) return true;
  if (rec.size !== st.size || rec.mtimeNs !== st.mtimeNs || rec.ctimeNs !== st.ctimeNs || rec.ino !== st.ino) return true;
  // Changed again within the same timestamp tick as the copy: the stat cannot tell, so copy again.
  return rec.mtimeNs >= rec.copiedAtNs - RACY_NS || rec.ctimeNs >= rec.copiedAtNs - RACY_NS;
}

/** One pass: copy every file whose stat differs from its record (or is racy); drop vanished files. */
async function pass(o: FreezeCopyOptions, exclude: (rel: string) => boolean, deadline: number | null): Promise<{ copied: number; removed: number; files: number }> {
  const files = await walk(o.source, exclude);
  const present = new Set(files);
  let copied = 0;
  let removed = 0;
  for (const rel of files) {
    if (deadline !== null && performance.now() > deadline) throw new FreezeBudgetExceeded(performance.now() - (deadline - o.maxPauseMs), o.maxPauseMs);
    const src = join(o.source, rel);
    const st = await stat(src, { bigint: true }).catch(() => null);
    if (!st) continue;
    const cur = { size: Number(st.size), mtimeNs: st.mtimeNs, ctimeNs: st.ctimeNs, ino: Number(st.ino) };
    if (!needsCopy(o.state.records.get(rel), cur)) continue;
    const copiedAtNs = nowNs();
    const dst = join(o.target, rel);
    await mkdir(dirname(dst), { recursive: true });
    await copyFile(src, dst);
    o.state.records.set(rel, { ...cur, copiedAtNs });
    o.state.dirty.add(rel);
    copied++;
  }
  for (const rel of [...o.state.records.keys()]) {
    if (present.has(rel)) continue;
    await rm(join(o.target, rel), { force: true });
    o.state.records.delete(rel);
    o.state.dirty.add(rel);
    removed++;
  }
  return { copied, removed, files: files.length };
}

/** Every thread of the process is stopped (state T or t in /proc/PID/task/TID/stat). */
async function allThreadsStopped(pid: number): Promise<boolean> {
  const tids = await readdir(`/proc/${pid}/task`);
  for (const tid of tids) {
    const s = await readFile(`/proc/${pid}/task/${tid}/stat`, 'utf8').catch(() => null);
    if (s === null) continue;
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
  for (let i = 0; i < (o.warmPasses ?? 2); i++) {
    const r = await pass(o, exclude, null);
    copiedUnpaused += r.copied;
    removed += r.removed;
    if (r.copied === 0 && i > 0) break;
  }
  const pid = await o.pid();
  if (pid === null) {
    // No JVM: the files are at rest. One more pass catches a service that stopped mid-copy.
    const r = await pass(o, exclude, null);
    return { takenAt: Date.now(), pauseMs: 0, frozen: false, copiedUnpaused: copiedUnpaused + r.copied, copiedPaused: 0, removed: removed + r.removed, files: r.files };
  }
  const t0 = performance.now();
  const takenAt = Date.now();
  process.kill(pid, 'SIGSTOP');
  try {
    const deadline = t0 + o.maxPauseMs;
    while (!(await allThreadsStopped(pid))) {
      if (performance.now() > deadline) throw new FreezeBudgetExceeded(performance.now() - t0, o.maxPauseMs);
      await new Promise((r) => setImmediate(r));
    }
    const r = await pass(o, exclude, deadline);
    const pauseMs = performance.now() - t0;
    return { takenAt, pauseMs, frozen: true, copiedUnpaused, copiedPaused: r.copied, removed: removed + r.removed, files: r.files };
  } finally {
    try {
      process.kill(pid, 'SIGCONT');
    } catch {
      // The JVM died while frozen: nothing to resume.
    }
  }
}
