/**
 * The primary's side: every interval, for each item, take a consistent local snapshot and ship what the
 * standby lacks, then commit (the standby verifies and installs). Derby: frozen point-in-time copy, the
 * changed files by checksum, one commit for the unit. sqlite: online backup, then the posixdata files
 * (so everything the snapshot indexes is there first), then the snapshot; deletes of object files last.
 */
import { createReadStream } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { PeerTransport } from '../../ports.js';
import type { NimbusStateEngine } from './types.js';
import { HashCache, walkFiles, type Entry } from './tree.js';
import type { InstalledCopy, ResolvedDerbyItem, ResolvedItem, ResolvedSqliteItem } from './receiver.js';

export const BASE = '/peer/nimbus-state';

export interface ItemShipStatus {
  lastTakenAt: number | null;
  /** Last copy the standby verified and installed. */
  lastAck: { snapshotId: string; takenAt: number; ackedAt: number; verifyMs: number } | null;
  /** How long the service was frozen (Derby); sqlite's online backup pauses nothing and records 0. */
  pausesMs: number[];
  /** sqlite: duration of each online backup (the service keeps running through it). */
  backupMs: number[];
  /** Copy point → acknowledged install, per round. */
  recoveryPointsMs: number[];
  filesShipped: number;
  bytesShipped: number;
  lastError: string | null;
}

const keep = (a: number[], v: number) => {
  a.push(v);
  if (a.length > 200) a.shift();
};

export class NimbusStateSender {
  readonly items: Map<string, ItemShipStatus>;
  private readonly hashes = new HashCache();
  /** What the standby's Derby mirror holds (null: ask it). */
  private readonly peerMirror = new Map<string, Map<string, string> | null>();
  private snapSeq = 0;

  constructor(
    private readonly o: { items: ResolvedItem[]; stagingDir: string; engine: NimbusStateEngine; transport: PeerTransport; requestTimeoutMs: number },
  ) {
    this.items = new Map(o.items.map((i) => [i.name, { lastTakenAt: null, lastAck: null, pausesMs: [], backupMs: [], recoveryPointsMs: [], filesShipped: 0, bytesShipped: 0, lastError: null }]));
  }

  /** One round over every item; each item's failure is recorded and the others still run. */
  async round(peerUrl: string): Promise<boolean> {
    let ok = true;
    for (const item of this.o.items) {
      const st = this.items.get(item.name)!;
      try {
        if (item.kind === 'derby') await this.derby(peerUrl, item, st);
        else await this.sqlite(peerUrl, item, st);
        st.lastError = null;
      } catch (err) {
        ok = false;
        st.lastError = (err as Error).message;
        if (item.kind === 'derby') this.peerMirror.set(item.name, null);
      }
    }
    return ok;
  }

  private post<T>(peerUrl: string, path: string, body: unknown): Promise<T> {
    return this.o.transport.post<T>(peerUrl, `${BASE}${path}`, body, this.o.requestTimeoutMs);
  }

  private async put(peerUrl: string, item: string, area: string, root: string, e: Entry & { sha256: string }, st: ItemShipStatus, withMtime: boolean): Promise<void> {
    const q = new URLSearchParams({ item, area, path: e.path, sha256: e.sha256, size: String(e.size), ...(withMtime ? { mtimeMs: String(e.mtimeMs) } : {}) });
    await this.o.transport.putStream(peerUrl, `${BASE}/file?${q.toString()}`, createReadStream(join(root, e.path)), e.size, this.o.requestTimeoutMs);
    st.filesShipped++;
    st.bytesShipped += e.size;
  }

  private snapshotId(name: string): string {
    return `${name}-${Date.now()}-${++this.snapSeq}`;
  }

  private async derby(peerUrl: string, item: ResolvedDerbyItem, st: ItemShipStatus): Promise<void> {
    const snap = join(this.o.stagingDir, item.name, 'snapshot');
    const copy = await this.o.engine.derbyCopy({ name: item.name, source: item.path, target: snap, pidFile: item.pidFile, maxPauseMs: item.maxPauseMs });
    st.lastTakenAt = copy.takenAt;
    if (copy.frozen) keep(st.pausesMs, copy.pauseMs);
    const entries = await this.hashes.manifest(snap);
    let peer = this.peerMirror.get(item.name) ?? null;
    if (!peer) {
      const m = await this.post<{ entries: Entry[] }>(peerUrl, '/manifest', { item: item.name, area: 'mirror' });
      peer = new Map(m.entries.map((e) => [e.path, e.sha256 ?? '']));
    }
    for (const e of entries) if (peer.get(e.path) !== e.sha256) await this.put(peerUrl, item.name, 'mirror', snap, e as Entry & { sha256: string }, st, false);
    const ack = await this.post<InstalledCopy>(peerUrl, '/commit', { item: item.name, kind: 'derby', snapshotId: this.snapshotId(item.name), takenAt: copy.takenAt, entries });
    this.peerMirror.set(item.name, new Map(entries.map((e) => [e.path, e.sha256 ?? ''])));
    st.lastAck = { snapshotId: ack.snapshotId, takenAt: copy.takenAt, ackedAt: Date.now(), verifyMs: ack.verifyMs };
    keep(st.recoveryPointsMs, Date.now() - copy.takenAt);
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
    for (const e of local) {
      const t = theirs.get(e.path);
      if (t && t.size === e.size && t.mtimeMs === e.mtimeMs) continue;
      const h = await this.hashes.hash(join(item.posixdata, e.path)).catch(() => null);
      if (!h) continue; // deleted meanwhile
      await this.put(peerUrl, item.name, 'posixdata', item.posixdata, { ...e, size: h.size, sha256: h.sha256 }, st, true);
    }
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

  resetPeer(): void {
    for (const k of this.peerMirror.keys()) this.peerMirror.set(k, null);
  }
}
