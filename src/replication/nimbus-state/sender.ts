/**
 * The primary's side: every interval, for each item, take a consistent local snapshot and ship what the
 * standby lacks, then commit (the standby verifies and installs). Derby: frozen point-in-time copy, then
 * one unit: the blocks changed since the standby's last acknowledged unit as a delta (or whole files
 * when its mirror is at no base this side knows), one commit. sqlite: online backup, then the posixdata files
 * (so everything the snapshot indexes is there first), then the snapshot; deletes of object files last.
 */
import { createHash } from 'node:crypto';
import { createReadStream, readSync } from 'node:fs';
import { mkdir, open, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { PeerTransport } from '../../ports.js';
import type { DerbyCopy, NimbusStateEngine, RefusalReason } from './types.js';
import { MAX_RECORD_BYTES, blockRuns, encodeRecordHeader, manifestDigest, planFile, type UnitFile } from './blocks.js';
import { HashCache, walkFiles, type Entry } from './tree.js';
import type { InstalledCopy, ResolvedDerbyItem, ResolvedItem, ResolvedSqliteItem } from './receiver.js';

export const BASE = '/peer/nimbus-state';

export interface ItemShipStatus {
  lastTakenAt: number | null;
  /** Last copy the standby verified and installed. */
  lastAck: { snapshotId: string; takenAt: number; ackedAt: number; verifyMs: number } | null;
  /** How long the service was frozen (Derby, every freeze, given up or not); sqlite's online backup pauses nothing and records 0. */
  pausesMs: number[];
  /** Derby: freezes given up for exceeding maxPauseMs (each retried at once, then next round). */
  abandonedFreezes: number;
  /** sqlite: duration of each online backup (the service keeps running through it). */
  backupMs: number[];
  /** Copy point → acknowledged install, per round. */
  recoveryPointsMs: number[];
  filesShipped: number;
  bytesShipped: number;
  /** Derby: units the standby could not patch (base mismatch, missing or garbled delta) and got whole files for. */
  fallbacks: number;
  /** Derby: how the last acknowledged unit went (files unchanged / as delta / whole, delta bytes and records). */
  lastUnit: { same: number; delta: number; whole: number; /** whole because new (no copy of it on the standby before) */ wholeNew: number; deltaBytes: number; records: number; tableCheck: boolean | null; patchMs: number | null; syncMs: number | null; standbySteps?: Record<string, number> } | null;
  lastError: string | null;
}

/** What the sender knows of the standby's Derby mirror. */
interface DerbyShip {
  /** Every file's digest in the last unit the standby acknowledged (null: none since this copy started). */
  acked: Map<string, string> | null;
  /** Digests of units sent since and not acknowledged (the standby may hold any of them). */
  attempted: Map<string, Set<string>>;
  /** Blocks changed in the local copy since the acknowledged unit. */
  dirty: Map<string, Set<number>>;
  /** Ask the standby what its mirror holds before planning. */
  ask: boolean;
}

/**
 * Writes the delta unit: for each file shipped as a delta, its changed blocks (coalesced runs, read from
 * the local copy) as records with their sha256. Streams through one record buffer; returns the unit's sha256.
 */
async function writeDelta(path: string, snap: string, files: UnitFile[], dirty: Map<string, Set<number>>): Promise<{ sha256: string; size: number; records: number }> {
  const out = await open(path, 'w');
  const whole = createHash('sha256');
  let size = 0;
  let records = 0;
  const buf = Buffer.allocUnsafe(MAX_RECORD_BYTES);
  // Records go out through a 1 MiB buffer: thousands of scattered pages, a few large writes.
  const outBuf = Buffer.allocUnsafe(MAX_RECORD_BYTES);
  let outLen = 0;
  const emit = async (b: Buffer) => {
    if (outLen + b.length > outBuf.length) {
      await out.write(outBuf, 0, outLen);
      outLen = 0;
    }
    if (b.length > outBuf.length) await out.write(b);
    else outLen += b.copy(outBuf, outLen);
  };
  try {
    for (const [i, f] of files.entries()) {
      if (f.mode !== 'delta') continue;
      const runs = blockRuns(dirty.get(f.path) ?? [], f.size);
      if (!runs.length) continue;
      const fh = await open(join(snap, f.path), 'r');
      try {
        for (const r of runs) {
          // Synchronous scattered reads (page cache): ~5 µs each against a thread-pool round trip.
          const bytesRead = readSync(fh.fd, buf, 0, r.length, r.offset);
          if (++records % 256 === 0) await new Promise((res) => setImmediate(res));
          if (bytesRead !== r.length) throw new Error(`${f.path}: the local copy is shorter than recorded`);
          const data = buf.subarray(0, r.length);
          const head = encodeRecordHeader({ file: i, offset: r.offset, length: r.length, sha256: createHash('sha256').update(data).digest('hex') });
          whole.update(head).update(data);
          await emit(head);
          await emit(data);
          size += head.length + data.length;
        }
      } finally {
        await fh.close();
      }
    }
    if (outLen) await out.write(outBuf, 0, outLen);
  } finally {
    await out.close();
  }
  return { sha256: whole.digest('hex'), size, records };
}

const keep = (a: number[], v: number) => {
  a.push(v);
  if (a.length > 200) a.shift();
};

export class NimbusStateSender {
  readonly items: Map<string, ItemShipStatus>;
  private readonly hashes = new HashCache();
  private readonly derbyState = new Map<string, DerbyShip>();
  private snapSeq = 0;

  constructor(
    private readonly o: { items: ResolvedItem[]; stagingDir: string; engine: NimbusStateEngine; transport: PeerTransport; requestTimeoutMs: number },
  ) {
    this.items = new Map(o.items.map((i) => [i.name, { lastTakenAt: null, lastAck: null, pausesMs: [], backupMs: [], recoveryPointsMs: [], abandonedFreezes: 0, filesShipped: 0, bytesShipped: 0, fallbacks: 0, lastUnit: null, lastError: null }]));
  }

  /**
   * One round over every item; each item's failure is recorded and the others still run. The Derby
   * copies (with their freeze) run first, one at a time; then the Derby units ship while the sqlite
   * items run, so a round lasts about its longest item, not their sum (shorter rounds, smaller deltas).
   */
  async round(peerUrl: string): Promise<boolean> {
    const run = async (item: ResolvedItem, fn: () => Promise<void>): Promise<boolean> => {
      const st = this.items.get(item.name)!;
      try {
        await fn();
        st.lastError = null;
        return true;
      } catch (err) {
        st.lastError = (err as Error).message;
        return false;
      }
    };
    const shipping: Promise<boolean>[] = [];
    for (const item of this.o.items) {
      if (item.kind !== 'derby') continue;
      const st = this.items.get(item.name)!;
      let copy: { copy: DerbyCopy; snap: string } | null = null;
      const ok = await run(item, async () => void (copy = await this.derbyCopy(item, st)));
      if (ok && copy) {
        const c: { copy: DerbyCopy; snap: string } = copy;
        shipping.push(run(item, () => this.derby(peerUrl, item, st, c.copy, c.snap)));
      } else shipping.push(Promise.resolve(false));
    }
    for (const item of this.o.items) if (item.kind === 'sqlite') shipping.push(run(item, () => this.sqlite(peerUrl, item, this.items.get(item.name)!)));
    return (await Promise.all(shipping)).every(Boolean);
  }

  private post<T>(peerUrl: string, path: string, body: unknown): Promise<T> {
    return this.o.transport.post<T>(peerUrl, `${BASE}${path}`, body, this.o.requestTimeoutMs);
  }

  private async put(peerUrl: string, item: string, area: 'mirror' | 'posixdata' | 'incoming' | 'delta', root: string, e: Entry & { sha256: string }, st: ItemShipStatus, withMtime: boolean): Promise<void> {
    const q = new URLSearchParams({ item, area, path: e.path, sha256: e.sha256, size: String(e.size), ...(withMtime ? { mtimeMs: String(e.mtimeMs) } : {}) });
    await this.o.transport.putStream(peerUrl, `${BASE}/file?${q.toString()}`, createReadStream(join(root, e.path)), e.size, this.o.requestTimeoutMs);
    st.filesShipped++;
    st.bytesShipped += e.size;
  }

  private snapshotId(name: string): string {
    return `${name}-${Date.now()}-${++this.snapSeq}`;
  }

  private derbyShip(name: string): DerbyShip {
    let d = this.derbyState.get(name);
    if (!d) this.derbyState.set(name, (d = { acked: null, attempted: new Map(), dirty: new Map(), ask: true }));
    return d;
  }

  private async derbyCopy(item: ResolvedDerbyItem, st: ItemShipStatus): Promise<{ copy: DerbyCopy; snap: string }> {
    const snap = join(this.o.stagingDir, item.name, 'snapshot');
    let copy: DerbyCopy;
    try {
      copy = await this.o.engine.derbyCopy({ name: item.name, source: item.path, target: snap, pidFile: item.pidFile, maxPauseMs: item.maxPauseMs });
    } catch (err) {
      // Freezes given up still stopped the service: they count in the pause figures.
      for (const p of (err as { abandonedPausesMs?: number[] }).abandonedPausesMs ?? []) keep(st.pausesMs, p);
      st.abandonedFreezes += (err as { abandonedPausesMs?: number[] }).abandonedPausesMs?.length ?? 0;
      throw err;
    }
    st.lastTakenAt = copy.takenAt;
    for (const p of copy.abandonedPausesMs ?? []) keep(st.pausesMs, p);
    st.abandonedFreezes += copy.abandonedPausesMs?.length ?? 0;
    if (copy.frozen) keep(st.pausesMs, copy.pauseMs);
    return { copy, snap };
  }

  private async derby(peerUrl: string, item: ResolvedDerbyItem, st: ItemShipStatus, copy: DerbyCopy, snap: string): Promise<void> {
    const ds = this.derbyShip(item.name);
    if (copy.fresh) {
      // A new local copy: nothing is known about which blocks the standby lacks.
      ds.acked = null;
      ds.attempted.clear();
      ds.dirty.clear();
    } else {
      for (const [p, blocks] of copy.changed) {
        let set = ds.dirty.get(p);
        if (!set) ds.dirty.set(p, (set = new Set()));
        for (const b of blocks) set.add(b);
      }
    }
    if (!ds.acked) ds.ask = true;
    let ack: InstalledCopy;
    try {
      ack = await this.shipDerby(peerUrl, item, st, copy, snap, ds, false);
    } catch (err) {
      const reason = ((err as { details?: { body?: { reason?: string } } }).details?.body?.reason ?? null) as RefusalReason | null;
      if (reason !== 'base-mismatch' && reason !== 'delta-missing') throw err;
      // The standby cannot use the delta: a full copy of every file it does not hold, in this round.
      ds.ask = true;
      st.fallbacks++;
      ack = await this.shipDerby(peerUrl, item, st, copy, snap, ds, true);
    }
    ds.acked = new Map(copy.files.map((f) => [f.path, f.digest]));
    ds.attempted.clear();
    ds.dirty.clear();
    ds.ask = false;
    st.lastAck = { snapshotId: ack.snapshotId, takenAt: copy.takenAt, ackedAt: Date.now(), verifyMs: ack.verifyMs };
    keep(st.recoveryPointsMs, Date.now() - copy.takenAt);
  }

  /** Plans, writes and ships one Derby unit (delta records and whole files), then commits it. */
  private async shipDerby(peerUrl: string, item: ResolvedDerbyItem, st: ItemShipStatus, copy: DerbyCopy, snap: string, ds: DerbyShip, forceWhole: boolean): Promise<InstalledCopy> {
    let peer: Map<string, string | null> | null = null;
    if (ds.ask) {
      const m = await this.post<{ entries: { path: string; digest?: string | null }[] }>(peerUrl, '/manifest', { item: item.name, area: 'mirror' });
      peer = new Map(m.entries.map((e) => [e.path, e.digest ?? null]));
      ds.ask = false;
    }
    const snapshotId = this.snapshotId(item.name);
    let wholeNew = 0;
    const files: UnitFile[] = copy.files.map((f) => {
      const bases = [...(ds.acked?.has(f.path) ? [ds.acked.get(f.path)!] : []), ...(ds.attempted.get(f.path) ?? [])];
      const plan = planFile({ digest: f.digest, peer: peer ? (peer.get(f.path) ?? null) : undefined, bases, forceWhole });
      if (plan.mode === 'whole' && !bases.length && !peer?.has(f.path)) wholeNew++;
      return { path: f.path, size: f.size, digest: f.digest, mode: plan.mode, bases: plan.bases };
    });
    for (const f of files) {
      if (f.mode !== 'whole') continue;
      const h = await this.hashes.hash(join(snap, f.path));
      f.sha256 = h.sha256;
    }
    const deltaDir = join(this.o.stagingDir, item.name, 'delta');
    await rm(deltaDir, { recursive: true, force: true });
    let delta: { sha256: string; size: number; records: number } | null = null;
    if (files.some((f) => f.mode === 'delta')) {
      await mkdir(deltaDir, { recursive: true });
      delta = await writeDelta(join(deltaDir, `${snapshotId}.delta`), snap, files, ds.dirty);
    }
    const unit = { snapshotId, takenAt: copy.takenAt, files, delta: delta && { sha256: delta.sha256, size: delta.size } };
    try {
      for (const f of files) {
        if (f.mode === 'whole') await this.put(peerUrl, item.name, 'incoming', snap, { path: f.path, size: f.size, mtimeMs: 0, sha256: f.sha256! }, st, false);
      }
      if (delta) await this.put(peerUrl, item.name, 'delta', deltaDir, { path: `${snapshotId}.delta`, size: delta.size, mtimeMs: 0, sha256: delta.sha256 }, st, false);
      const ack = await this.post<InstalledCopy & { tableCheck?: boolean; patchMs?: number; syncMs?: number; steps?: Record<string, number> }>(peerUrl, '/commit', { item: item.name, kind: 'derby', ...unit, manifestDigest: manifestDigest(unit) });
      st.lastUnit = { same: files.filter((f) => f.mode === 'same').length, delta: files.filter((f) => f.mode === 'delta').length, whole: files.filter((f) => f.mode === 'whole').length, wholeNew, deltaBytes: delta?.size ?? 0, records: delta?.records ?? 0, tableCheck: ack.tableCheck ?? null, patchMs: ack.patchMs ?? null, syncMs: ack.syncMs ?? null, standbySteps: ack.steps };
      return ack;
    } catch (err) {
      // The standby may have patched its mirror to this unit before failing: it is a base from now on.
      for (const f of files) {
        let set = ds.attempted.get(f.path);
        if (!set) ds.attempted.set(f.path, (set = new Set()));
        set.add(f.digest);
        if (set.size > 16) ds.ask = true;
      }
      throw err;
    } finally {
      await rm(deltaDir, { recursive: true, force: true });
    }
  }

  private async sqlite(peerUrl: string, item: ResolvedSqliteItem, st: ItemShipStatus): Promise<void> {
    const dir = join(this.o.stagingDir, item.name);
    await mkdir(dir, { recursive: true });
    const snap = join(dir, 'snapshot.db');
    await rm(snap, { force: true });
    const takenAt = Date.now();
    const b = await this.o.engine.sqliteBackup(item.path, snap);
    st.lastTakenAt = takenAt;
    keep(st.pausesMs, 0);
    keep(st.backupMs, b.ms);
    const local = await walkFiles(item.posixdata, (rel) => rel.endsWith('.nha-tmp'));
    const remote = await this.post<{ entries: Entry[] }>(peerUrl, '/manifest', { item: item.name, area: 'posixdata' });
    const theirs = new Map(remote.entries.map((e) => [e.path, e]));
    const todo = local.filter((e) => {
      const t = theirs.get(e.path);
      return !(t && t.size === e.size && t.mtimeMs === e.mtimeMs);
    });
    // A few uploads at a time: object files are small, and one request each is mostly round trips.
    const worker = async () => {
      for (let e = todo.shift(); e; e = todo.shift()) {
        const h = await this.hashes.hash(join(item.posixdata, e.path)).catch(() => null);
        if (!h) continue; // deleted meanwhile
        await this.put(peerUrl, item.name, 'posixdata', item.posixdata, { ...e, size: h.size, sha256: h.sha256 }, st, true);
      }
    };
    await Promise.all(Array.from({ length: 4 }, worker));
    const h = await this.hashes.hash(snap);
    await this.put(peerUrl, item.name, 'incoming', dir, { path: 'snapshot.db', size: h.size, mtimeMs: 0, sha256: h.sha256 }, st, false);
    const ack = await this.post<InstalledCopy>(peerUrl, '/commit', { item: item.name, kind: 'sqlite', snapshotId: this.snapshotId(item.name), takenAt, sha256: h.sha256, root: item.posixdata });
    st.lastAck = { snapshotId: ack.snapshotId, takenAt, ackedAt: Date.now(), verifyMs: ack.verifyMs };
    keep(st.recoveryPointsMs, Date.now() - takenAt);
    // Deletes last, and never when this side lists nothing (a vanished tree must not empty the standby's).
    const mine = new Set(local.map((e) => e.path));
    const gone = remote.entries.map((e) => e.path).filter((p) => !mine.has(p) && !p.endsWith('.nha-tmp'));
    if (gone.length && local.length) await this.post(peerUrl, '/posixdata/delete', { item: item.name, paths: gone });
  }

  /** Every item's last acknowledged copy point is within its bound (this node's clock). */
  peerCaughtUp(): boolean {
    const now = Date.now();
    return this.o.items.every((i) => {
      const a = this.items.get(i.name)?.lastAck;
      return a !== null && a !== undefined && now - a.takenAt <= i.boundMs;
    });
  }

  /** A new standby (or path to it): ask what its mirror holds before the next unit. */
  resetPeer(): void {
    for (const d of this.derbyState.values()) d.ask = true;
  }
}
