/**
 * What the replication choreography needs beyond the generic `Database` port. The PostgreSQL adapter
 * implements all of it; unit tests implement it with fakes.
 */
import type { Readable } from 'node:stream';
import type { Database, DbEndpoint, DbPosition } from '../../ports.js';
import type { TimelineFork } from './lsn.js';

/** Switches synchronous replication on (naming the one standby that must confirm) or off. */
export interface SyncStandbyControl {
  /** `null` clears synchronous_standby_names so commits no longer wait for a standby. */
  setSynchronousStandby(name: string | null): Promise<void>;
}

/** One standby connected to this primary, as the primary sees it. */
export interface ReplicaInfo {
  /** The standby's application name (its node name). */
  name: string;
  /** e.g. 'streaming', 'catchup', 'startup'. */
  state: string;
  /** 'sync', 'async', 'potential', 'quorum'. */
  syncState: string;
  sentBytes: number | null;
  /** Position the standby reports flushed to its disk (what synchronous commits wait for). */
  flushBytes?: number | null;
  replayBytes: number | null;
  /** Replay lag reported by the primary; 0 when the standby has replayed everything sent. */
  replayLagMs: number | null;
}

/** A replication slot on this primary. */
export interface SlotInfo {
  name: string;
  active: boolean;
  /** 'reserved', 'extended', 'unreserved', 'lost' or null when no WAL is reserved. */
  walStatus: string | null;
  restartLsn: string | null;
}

/** What a primary says about itself over the replication protocol (checked with replication credentials). */
export interface PrimaryIdentity {
  systemId: string;
  timeline: number;
  position: DbPosition;
  /** Forks that led to the current timeline (empty on timeline 1). */
  history: TimelineFork[];
}

/** Result of a clone. */
export interface CloneResult {
  /** The previous data directory, moved aside and kept (only with `keepOld`). */
  keptDir: string | null;
  /** The previous WAL archive, moved aside (only with `archiveAside` and a non-empty archive). */
  keptArchive?: string | null;
  bytes: number;
  files: number;
  durationMs: number;
}

/** The local database as the choreography drives it. */
export interface ManagedDatabase extends Database, SyncStandbyControl {
  /** Node name: application_name of the standby and source of its slot name. */
  readonly nodeName: string;
  /** Where peers reach this server. */
  endpoint(): DbEndpoint;
  /** Base backup that first creates `slot` (reserving WAL from now on) when given. */
  baseBackup(opts?: { slot?: string }): Promise<Readable>;
  /** cloneFrom with a result; `keepOld` keeps the replaced data directory (diverged data) for inspection. */
  clone(backup: Readable, primary: DbEndpoint, opts: { force: boolean; keepOld?: boolean; archiveAside?: boolean }): Promise<CloneResult>;
  /** Standbys connected to this primary. */
  replicas(): Promise<ReplicaInfo[]>;
  slots(): Promise<SlotInfo[]>;
  /** Drops and recreates slots whose WAL was removed (a standby then catches up from the archive). */
  repairSlots(): Promise<string[]>;
  /** Checks credentials and reads the primary's timeline and history over the replication protocol. */
  identifyPrimary(primary: DbEndpoint): Promise<PrimaryIdentity>;
  /** Where the WAL of this stopped server ends (timeline + end position), without accepting writes. */
  localWalEnd(): Promise<DbPosition>;
  /** Whether the server runs (its postmaster answers). */
  isRunning(): Promise<boolean>;
}
