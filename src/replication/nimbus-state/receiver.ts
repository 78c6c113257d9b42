/**
 * The standby's side: receives files into a pristine mirror (Derby units, as shipped), object files
 * straight into posixdata (immutable once indexed), and sqlite snapshots into an incoming area; a commit
 * checks every file against the sender's manifest, verifies the copy (Derby: boot a copy and check every
 * table; sqlite: integrity_check, data_key rewrite, every indexed file present) and installs it with a
 * rename. Only a verified, installed copy counts.
 */
import { existsSync } from 'node:fs';
import { cp, mkdir, readFile, rename, rm, utimes, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { Readable } from 'node:stream';
import type { NimbusStateEngine } from './types.js';
import { NimbusStateError } from './types.js';
import { HashCache, safeRelative, walkFiles, type Entry } from './tree.js';
import { DerbyMirror, type DerbyUnit } from './derby-mirror.js';
import { receiveVerified } from '../../util/verified-receive.js';

export interface ResolvedDerbyItem {
  kind: 'derby';
  name: string;
  path: string;
  pidFile?: string;
  maxPauseMs: number;
  boundMs: number;
  /** How often a commit runs SYSCS_CHECK_TABLE on every table (and re-reads the mirror) instead of a boot alone. */
  tableCheckEveryMs: number;
}
export interface ResolvedSqliteItem {
  kind: 'sqlite';
  name: string;
  path: string;
  posixdata: string;
  boundMs: number;
}
export type ResolvedItem = ResolvedDerbyItem | ResolvedSqliteItem;

/** The last verified, installed copy of an item on this standby. */
export interface InstalledCopy {
  snapshotId: string;
  /** Primary's wall clock at the copy point. */
  takenAt: number;
  /** This node's wall clock when it was installed. */
  installedAt: string;
  /** Monotonic ms (performance.now) when installed: freshness on this node's own clock. */
  installedMono: number;
  verifyMs: number;
  detail: string;
}

export type FileArea = 'mirror' | 'posixdata' | 'incoming' | 'delta';

export class NimbusStateReceiver {
  private readonly items: Map<string, ResolvedItem>;
  private readonly hashes = new HashCache();
  readonly installed = new Map<string, InstalledCopy>();
  private lastError: { item: string; message: string; at: string } | null = null;
  /** One commit per item at a time. */
  private readonly busy = new Set<string>();
  private readonly mirrors = new Map<string, DerbyMirror>();
  /** Per Derby item, what its last commit still does after answering (never failing: errors go to lastError). */
  private readonly background = new Map<string, Promise<void>>();
  /** performance.now() of each Derby item's last full table check (none yet: the first commit runs one). */
  private readonly lastTableCheck = new Map<string, number>();

  constructor(
    private readonly o: { items: ResolvedItem[]; stagingDir: string; engine: NimbusStateEngine; accepting: () => boolean },
  ) {
    this.items = new Map(o.items.map((i) => [i.name, i]));
  }

  private item(name: string): ResolvedItem {
    const i = this.items.get(name);
    if (!i) throw new NimbusStateError(`no nimbus-state item ${JSON.stringify(name)} is configured on this node (configure the same items on both nodes)`, 404);
    return i;
  }

  private guard(): void {
    if (!this.o.accepting()) throw new NimbusStateError('this node is not a standby: it accepts no nimbus state', 409);
  }

  private dir(name: string, area: 'mirror' | 'incoming'): string {
    return join(this.o.stagingDir, name, area);
  }

  private mirror(name: string): DerbyMirror {
    let m = this.mirrors.get(name);
    if (!m) this.mirrors.set(name, (m = new DerbyMirror(join(this.o.stagingDir, name))));
    return m;
  }

  /** Where a Derby item's copy is brought level with the mirror and booted (beside the installed one, for the rename). */
  private static bootDir(path: string): string {
    return join(dirname(path), `.${basename(path)}.nimbus-ha-new`);
  }

  /** Puts back a unit left aside by an install that was cut off between its two renames. */
  async recover(): Promise<void> {
    for (const i of this.items.values()) {
      const aside = `${i.path}.nimbus-ha-old`;
      if (!existsSync(i.path) && existsSync(aside)) await rename(aside, i.path);
      else if (existsSync(aside)) {
        // Cut off after the new copy went in: the old one is the next boot directory (or goes).
        const boot = NimbusStateReceiver.bootDir(i.path);
        if (i.kind === 'derby' && !existsSync(boot)) await rename(aside, boot);
        else await rm(aside, { recursive: true, force: true });
      }
      const rec = await readFile(join(this.o.stagingDir, i.name, 'installed.json'), 'utf8').catch(() => null);
      // Restored copies count as verified but not fresh: only the next commit makes them current.
      if (rec) this.installed.set(i.name, { ...(JSON.parse(rec) as InstalledCopy), installedMono: -Infinity });
    }
  }

  async manifest(name: string, area: 'mirror' | 'posixdata'): Promise<{ root: string; entries: (Entry & { digest?: string | null })[] }> {
    const i = this.item(name);
    if (area === 'mirror') {
      if (i.kind !== 'derby') throw new NimbusStateError(`${name} is not a Derby item`, 400);
      await this.settle(name);
      return { root: this.dir(name, 'mirror'), entries: await this.mirror(name).manifest() };
    }
    if (i.kind !== 'sqlite') throw new NimbusStateError(`${name} has no posixdata`, 400);
    return { root: i.posixdata, entries: await walkFiles(i.posixdata) };
  }

  async receiveFile(q: { item: string; area: FileArea; path: string; sha256: string; size: number; mtimeMs?: number }, body: Readable): Promise<{ bytes: number }> {
    this.guard();
    const i = this.item(q.item);
    const rel = safeRelative(q.path);
    let root: string;
    let target: string;
    if (q.area === 'posixdata' && i.kind === 'sqlite') target = join(i.posixdata, rel);
    else if (q.area === 'incoming' && i.kind === 'derby') target = this.mirror(i.name).incomingFile(rel);
    else if (q.area === 'delta' && i.kind === 'derby') target = join(this.mirror(i.name).incoming, rel);
    else if (q.area === 'incoming' && i.kind === 'sqlite') target = join(this.dir(i.name, 'incoming'), rel);
    else throw new NimbusStateError(`area ${q.area} does not belong to ${i.kind} item ${i.name}`, 400);
    return receiveVerified(body, {
      target,
      sha256: q.sha256,
      size: q.size,
      tmpSuffix: '.nha-tmp',
      mismatch: () => new NimbusStateError(`checksum or size mismatch for ${q.item}:${rel}: resend`, 400),
      beforeRename: q.mtimeMs === undefined ? undefined : (tmp) => utimes(tmp, new Date(), new Date(q.mtimeMs!)),
    });
  }

  private async record(name: string, copy: InstalledCopy): Promise<void> {
    this.installed.set(name, copy);
    await mkdir(join(this.o.stagingDir, name), { recursive: true });
    await writeFile(join(this.o.stagingDir, name, 'installed.json'), JSON.stringify({ ...copy, installedMono: 0 }));
  }

  private async exclusive<T>(name: string, fn: () => Promise<T>): Promise<T> {
    if (this.busy.has(name)) throw new NimbusStateError(`a commit of ${name} is already running`, 409);
    this.busy.add(name);
    try {
      return await fn();
    } catch (err) {
      this.lastError = { item: name, message: (err as Error).message, at: new Date().toISOString() };
      throw err;
    } finally {
      this.busy.delete(name);
    }
  }

  /**
   * Replaces `target` by `fresh` (both in one directory): rename the old aside, the new in; the old one
   * then becomes `fresh` (the next boot directory: bringing it level costs what changed, not a copy).
   */
  private static async swapIn(fresh: string, target: string): Promise<void> {
    const aside = `${target}.nimbus-ha-old`;
    await rm(aside, { recursive: true, force: true });
    if (existsSync(target)) await rename(target, aside);
    await rename(fresh, target);
    if (existsSync(aside)) await rename(aside, fresh);
  }

  async commitDerby(name: string, c: DerbyUnit): Promise<InstalledCopy & { tableCheck: boolean; patchedBytes: number; patchMs: number; syncMs: number; steps: Record<string, number> }> {
    this.guard();
    const i = this.item(name);
    if (i.kind !== 'derby') throw new NimbusStateError(`${name} is not a Derby item`, 400);
    return this.exclusive(name, async () => {
      const tSettle = performance.now();
      await this.settle(name);
      const m = this.mirror(name);
      const tPatch = performance.now();
      const steps: Record<string, number> = { settle: tPatch - tSettle };
      await m.check(c, async (abs) => (await this.hashes.hash(abs).catch(() => null))?.sha256 ?? null);
      const last = this.lastTableCheck.get(name);
      const tableCheck = last === undefined || performance.now() - last >= i.tableCheckEveryMs;
      if (tableCheck) {
        // Re-read the mirror against its record now and then: nothing else would notice a block gone bad on this disk.
        const bad = await m.deepVerify();
        if (bad.length) {
          await m.invalidate();
          throw new NimbusStateError(`${name}: the mirror differs from its record (${bad.slice(0, 3).join(', ')}): send whole files`, 409, 'base-mismatch');
        }
      }
      // Booting runs Derby's recovery, which rewrites files: boot a copy (the boot directory), keep the mirror as shipped.
      const fresh = NimbusStateReceiver.bootDir(i.path);
      const level = m.isLevelAt((await m.record())?.snapshotId) && existsSync(fresh);
      steps.check = performance.now() - tPatch;
      const patched = await m.apply(c, level ? fresh : null);
      steps.apply = performance.now() - tPatch - steps.check;
      const patchMs = performance.now() - tPatch;
      const tSync = performance.now();
      if (!level) await m.syncTo(fresh);
      m.forgetFresh();
      const t0 = performance.now();
      const syncMs = t0 - tSync;
      let detail: string;
      try {
        if (tableCheck) {
          const v = await this.o.engine.derbyVerify(fresh);
          detail = `${v.databases} Derby database(s) booted and every table checked`;
        } else {
          const v = await this.o.engine.derbyBoot(fresh);
          detail = `${v.databases} Derby database(s) booted (crash recovery)`;
        }
      } catch (err) {
        this.background.set(name, m.finalize(patched.touched).catch(() => undefined));
        throw new NimbusStateError(`${name}: the copy did not boot or failed its table check: ${(err as Error).message}`, 422);
      }
      const verifyMs = performance.now() - t0;
      if (tableCheck) this.lastTableCheck.set(name, performance.now());
      const tSwap = performance.now();
      await NimbusStateReceiver.swapIn(fresh, i.path);
      m.swapped();
      steps.swap = performance.now() - tSwap;
      const copy: InstalledCopy = {
        snapshotId: c.snapshotId,
        takenAt: c.takenAt,
        installedAt: new Date().toISOString(),
        installedMono: performance.now(),
        verifyMs: Math.round(verifyMs),
        detail,
      };
      await this.record(name, copy);
      // Off the recovery point's path: make the mirror's patch durable, then level the next boot directory.
      this.background.set(
        name,
        (async () => {
          await m.finalize(patched.touched);
          if (existsSync(fresh)) await m.level(fresh);
        })().catch((err: Error) => {
          this.lastError = { item: name, message: `after installing: ${err.message}`, at: new Date().toISOString() };
        }),
      );
      return { ...copy, tableCheck, patchedBytes: patched.bytes, patchMs: Math.round(patchMs), syncMs: Math.round(syncMs), steps: Object.fromEntries(Object.entries(steps).map(([k, v]) => [k, Math.round(v)])) };
    });
  }

  /** Waits for an item's work left from its last commit (durable mirror record, boot directory level). */
  async settle(name?: string): Promise<void> {
    for (const [n, p] of [...this.background]) {
      if (name !== undefined && n !== name) continue;
      await p;
      if (this.background.get(n) === p) this.background.delete(n);
    }
  }

  async commitSqlite(name: string, c: { snapshotId: string; takenAt: number; sha256: string; root: string }): Promise<InstalledCopy & { rebased: number }> {
    this.guard();
    const i = this.item(name);
    if (i.kind !== 'sqlite') throw new NimbusStateError(`${name} is not a sqlite item`, 400);
    return this.exclusive(name, async () => {
      const incoming = join(this.dir(name, 'incoming'), 'snapshot.db');
      const got = await this.hashes.hash(incoming).catch(() => null);
      if (!got || got.sha256 !== c.sha256) throw new NimbusStateError(`${name}: the snapshot file is missing or different: resend`, 409);
      const fresh = join(dirname(i.path), `.${basename(i.path)}.nimbus-ha-new`);
      await rm(fresh, { force: true });
      await cp(incoming, fresh);
      const t0 = performance.now();
      let rebased = 0;
      try {
        await this.o.engine.sqliteCheck(fresh);
        if (c.root.replace(/\/+$/, '') !== i.posixdata.replace(/\/+$/, '')) rebased = await this.o.engine.sqliteRebase(fresh, c.root, i.posixdata);
        const keys = await this.o.engine.sqliteDataKeys(fresh);
        const missing = keys.filter((k) => !existsSync(k));
        if (missing.length) throw new Error(`${missing.length} indexed object file(s) are not here yet (${missing.slice(0, 2).join(', ')})`);
      } catch (err) {
        await rm(fresh, { force: true });
        throw new NimbusStateError(`${name}: the snapshot failed verification: ${(err as Error).message}`, 422);
      }
      // A journal beside the target belongs to the old file; left there it would be rolled into the new one.
      for (const suffix of ['-journal', '-wal', '-shm']) await rm(`${i.path}${suffix}`, { force: true });
      await rename(fresh, i.path);
      const copy: InstalledCopy = {
        snapshotId: c.snapshotId,
        takenAt: c.takenAt,
        installedAt: new Date().toISOString(),
        installedMono: performance.now(),
        verifyMs: Math.round(performance.now() - t0),
        detail: `integrity ok${rebased ? `, ${rebased} data_key(s) rebased` : ''}`,
      };
      await this.record(name, copy);
      return { ...copy, rebased };
    });
  }

  /** Deletes object files the primary no longer has, never one the installed index still references. */
  async deletePosix(name: string, paths: string[]): Promise<{ deleted: number; kept: number }> {
    this.guard();
    const i = this.item(name);
    if (i.kind !== 'sqlite') throw new NimbusStateError(`${name} has no posixdata`, 400);
    return this.exclusive(name, async () => {
      const referenced = new Set(existsSync(i.path) ? await this.o.engine.sqliteDataKeys(i.path) : []);
      let deleted = 0;
      let kept = 0;
      for (const p of paths) {
        const abs = join(i.posixdata, safeRelative(p));
        if (referenced.has(abs) || referenced.has(abs.replace(/\.meta$/, ''))) kept++;
        else {
          await rm(abs, { force: true });
          deleted++;
        }
      }
      return { deleted, kept };
    });
  }

  status(): Record<string, unknown> {
    const now = performance.now();
    return {
      items: Object.fromEntries(
        [...this.items.values()].map((i) => {
          const c = this.installed.get(i.name);
          return [i.name, c ? { snapshotId: c.snapshotId, takenAt: new Date(c.takenAt).toISOString(), installedAt: c.installedAt, ageMs: Number.isFinite(c.installedMono) ? Math.round(now - c.installedMono) : null, verifyMs: c.verifyMs, detail: c.detail } : null];
        }),
      ),
      lastError: this.lastError,
    };
  }

  /** Every item has a verified copy installed within its bound (on this node's clock). */
  caughtUp(): boolean {
    const now = performance.now();
    return [...this.items.values()].every((i) => {
      const c = this.installed.get(i.name);
      return c !== undefined && now - c.installedMono <= i.boundMs;
    });
  }
}
