/**
 * The interfaces that adapters implement. Nothing in src/ knows about PostgreSQL, S3, network addresses
 * or Nimbus; the composition root (src/cli/) wires concrete adapters to these ports.
 */
import type { Readable } from 'node:stream';

/** Roles of a node. `fenced` = a former primary that lost quorum or saw a higher epoch. */
export type Role = 'starting' | 'standby' | 'primary' | 'fenced' | 'maintenance';

export { assertNever } from './util/assert-never.js';

/** Time source. `monotonicMs` measures durations (leases, heartbeat ages); `nowMs` is wall time for logs. */
export interface Clock {
  nowMs(): number;
  monotonicMs(): number;
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
  /** Call `fn` once after `ms`; the returned function cancels it (idempotent). */
  timeout(ms: number, fn: () => void): () => void;
  /**
   * Call `fn` every `periodMs` on the process's wall-clock grid (util/cadence.ts), with how late it
   * fired; the returned function stops it. The first call comes at the next grid point, not at once.
   */
  every(periodMs: number, fn: (lateMs: number) => void, opts?: { unref?: boolean }): () => void;
}

/** Outcome of one probe of a service. */
export interface ProbeResult {
  ok: boolean;
  /** How long the probe took, in ms. */
  latencyMs: number;
  /** One line describing the failure (or the success) for history and /status. */
  detail: string;
}

/** Starts, stops and probes one protected service (the VM service, Cumulus, a demo app...). */
export interface ServiceController {
  readonly name: string;
  /** Start the service; resolves when the start command returned (not necessarily healthy yet). */
  start(): Promise<void>;
  /** Stop the service; must be idempotent. */
  stop(): Promise<void>;
  /** Probe health once, giving up after timeoutMs (a hang counts as a failure). */
  probe(timeoutMs: number): Promise<ProbeResult>;
}

/** Context passed to VIP operations so hooks and logs can say who took the address and why. */
export interface VipContext {
  node: string;
  epoch: number;
  role: Role;
  /** Why the address moves, in words (for logs and user scripts: NHA_REASON). Adapters must not parse it. */
  reason: string;
  /**
   * The address is taken over from another node that held it until just now (failover, switchover,
   * fail-back): its predecessor has fenced or died, so a duplicate-address probe must not block the move.
   * False or absent: no known predecessor (bootstrap, reconciliation).
   */
  takeover?: boolean;
}

/** The advertised address of the service. All operations are idempotent. */
export interface Vip {
  /** Human description, e.g. "10.0.0.100/24 on eth0" or "127.0.0.1:18080 -> 127.0.0.1:18081". */
  describe(): string;
  /** Take the address (add it, bind it, run the hook). Taking an address already held is not an error. */
  acquire(ctx: VipContext): Promise<void>;
  /** Give the address up. Releasing an address not held is not an error. */
  release(ctx: VipContext): Promise<void>;
  /** Whether this node holds the address right now (the real state, for reconciliation). */
  held(): Promise<boolean>;
  /** Release resources at shutdown (does not necessarily release the address: see release). */
  close(): Promise<void>;
}

/** Answer of the coordinator (witness) to a lease request or a read. */
export interface LeaseAnswer {
  /** Whether the request (acquire at an epoch, renew, release) was granted. */
  granted: boolean;
  /** The coordinator's highest epoch after the request. */
  epoch: number;
  /** Current lease holder, or null. */
  holder: string | null;
  /** Remaining lease time as the coordinator sees it, in ms (0 when none). */
  remainingMs: number;
  /**
   * The data-holder record: nodes known to hold every acknowledged write (null: none kept, no data path
   * is synchronous). Absent from coordinators that do not keep one.
   */
  holders?: string[] | null;
  /** Why a request was refused: an older or equal epoch, another node's live lease, not in the record... */
  reason?: 'stale-epoch' | 'lease-held' | 'not-a-holder' | 'not-the-primary' | 'primary-not-in-record';
}

/** Options of Coordinator.acquire for a new epoch. */
export interface CoordinatorAcquireOptions {
  /** The cluster keeps the data-holder record: a grant makes the candidate its only member. */
  holderRecord?: boolean;
  /** The operator accepted data loss: grant to a node outside the record (never over a live lease). */
  force?: boolean;
}

/**
 * The third vote for two-node clusters (a `nimbus-ha witness` process, or etcd for larger fleets).
 * It grants a new epoch to a node only when no other node holds an unexpired lease.
 */
export interface Coordinator {
  describe(): string;
  /** Acquire (epoch > coordinator's) or renew (same epoch, same holder) the lease for leaseMs. */
  acquire(node: string, epoch: number, leaseMs: number, timeoutMs: number, signal?: AbortSignal, opts?: CoordinatorAcquireOptions): Promise<LeaseAnswer>;
  /**
   * Set the data-holder record (the lease holder at `epoch` only; it must name itself). Resolves with the
   * answer; `granted: false` means the record was not changed.
   */
  setHolders(node: string, epoch: number, holders: string[] | null, timeoutMs: number): Promise<LeaseAnswer>;
  /** Give the lease up early (graceful handover) so a successor does not wait for expiry. */
  release(node: string, epoch: number, timeoutMs: number): Promise<LeaseAnswer>;
  /** Read the coordinator's state. */
  read(timeoutMs: number): Promise<LeaseAnswer>;
}

/** One recorded event (also one JSON line of the history file). */
export interface HaEvent {
  type: string;
  node: string;
  epoch: number;
  /** ISO-8601 wall time. */
  time: string;
  severity: 'info' | 'warning' | 'critical';
  /** One human sentence. */
  message: string;
  details?: Record<string, unknown>;
}

/** Delivers events to operators (webhook, email). Called in event order by one queue. */
export interface Notifier {
  readonly name: string;
  send(event: HaEvent): Promise<void>;
}

/** A log position of the database, comparable across nodes of one timeline history. */
export interface DbPosition {
  /** PostgreSQL LSN as text, e.g. "0/3000060". */
  lsn: string;
  /** Numeric form of the LSN (bytes), for lag arithmetic. */
  bytes: number;
  timeline: number;
}

/** Replication state of the local database as seen from its own node. */
export interface DbStatus {
  running: boolean;
  /** 'primary' when accepting writes, 'standby' while in recovery. */
  mode: 'primary' | 'standby' | 'stopped';
  position: DbPosition | null;
  /** Standby only: bytes and ms behind the primary's last known position. */
  lagBytes?: number;
  lagMs?: number;
  /** Whether the standby's WAL receiver is streaming from the primary. */
  streaming?: boolean;
  /** Primary only: how long the oldest commit has been waiting for the synchronous standby (ms; 0: none waits). */
  syncWaitMs?: number;
}

/** Connection facts a standby needs to follow a primary. */
export interface DbEndpoint {
  host: string;
  port: number;
}

/** The local PostgreSQL (or compatible) server under HA control. */
export interface Database {
  describe(): string;
  /** Start the server in whatever mode its data directory says. */
  start(): Promise<void>;
  /** Stop the server (fast shutdown); 'immediate' for fencing. */
  stop(mode?: 'fast' | 'immediate'): Promise<void>;
  status(): Promise<DbStatus>;
  /** Promote a standby to primary; resolves when it accepts writes. */
  promote(): Promise<void>;
  /** Stream a base backup of this (primary) server as a tar-like archive of the data directory. */
  baseBackup(): Promise<Readable>;
  /** Replace the local data directory with a base backup from the primary and start following it. */
  cloneFrom(backup: Readable, primary: DbEndpoint, opts: { force: boolean }): Promise<void>;
  /** Turn a stopped former primary into a standby of `primary` (rewind when possible, else re-clone). */
  follow(primary: DbEndpoint): Promise<void>;
  /** Refuse new writes (for a planned switchover) and return the final position. */
  fenceWrites(): Promise<DbPosition>;
  /** Allow writes again (switchover aborted). */
  unfenceWrites(): Promise<void>;
}

/** Metadata of one object in a repository. */
export interface ObjectInfo {
  key: string;
  size: number;
  /** The store's ETag without quotes (MD5 for single-part uploads, `md5-N` for multipart). */
  etag: string;
  /** Last modification time in ms since the epoch. */
  mtimeMs: number;
  /** User metadata (lower-case keys), when the listing includes it (HEAD does, LIST may not). */
  metadata?: Record<string, string>;
}

/** Options of one ObjectStore.put. */
export interface PutOptions {
  /**
   * The MD5 (hex) the content must have, for a single PUT: sent as Content-MD5, so a server that checks
   * it (S3, MinIO, Ceph) refuses a damaged body and keeps the object it had.
   */
  contentMd5?: string;
  /** A canned ACL for the new object (x-amz-acl); none: the server's default (private). */
  acl?: CannedAcl;
}

/** The canned object ACLs a repository can tell apart by their grants. */
export type CannedAcl = 'private' | 'public-read' | 'public-read-write' | 'authenticated-read';

/** An S3-compatible repository bucket (Cumulus, MinIO, s3rver). */
export interface ObjectStore {
  describe(): string;
  /** List every object under prefix, paginating as needed. */
  list(prefix?: string): AsyncIterable<ObjectInfo>;
  /** Metadata of one object, or null when absent. */
  head(key: string): Promise<ObjectInfo | null>;
  /** Stream an object's body. */
  get(key: string): Promise<Readable>;
  /** Store an object from a stream of known size (multipart when large) with user metadata. */
  put(key: string, body: Readable, size: number, metadata?: Record<string, string>, opts?: PutOptions): Promise<ObjectInfo>;
  delete(key: string): Promise<void>;
  /**
   * An object's ACL as a canned ACL (from its grants), null when the server keeps no object ACLs
   * (answers NotImplemented), or when the object is gone. Optional: stores without it copy no ACLs.
   */
  getAcl?(key: string): Promise<CannedAcl | null>;
  /** Set an object's canned ACL. */
  putAcl?(key: string, acl: CannedAcl): Promise<void>;
}

/** A heartbeat/peer message as carried over the wire (signed by the transport). */
export interface PeerState {
  node: string;
  role: Role;
  epoch: number;
  /** Whether all of the sender's local services are healthy. */
  healthy: boolean;
  /** The sender's view of who is primary at which epoch, if anyone. */
  primary: string | null;
  /** Sender's monotonic-free wall time (diagnostics only, never used for decisions). */
  sentAt: number;
  /** Replication summary the sender wants the peer to know (lag, positions...). */
  replication?: Record<string, unknown>;
}

/** Sends signed requests to a peer sidecar over one of its heartbeat paths. */
export interface PeerTransport {
  /**
   * POST a JSON body to `path` (e.g. "/peer/heartbeat") on the given base URL; returns the JSON reply.
   * Aborting `signal` fails the call at once (callers on the heartbeat tick enforce their own, shorter
   * deadline that way, without a timer of their own).
   */
  post<T>(baseUrl: string, path: string, body: unknown, timeoutMs: number, signal?: AbortSignal): Promise<T>;
  /** GET a streamed body (a base backup, a large file) from the peer. */
  getStream(baseUrl: string, path: string, timeoutMs: number): Promise<Readable>;
  /** PUT a streamed body of known size; the route checks a checksum carried in the signed path. */
  putStream<T>(baseUrl: string, path: string, body: Readable, size: number, timeoutMs: number): Promise<T>;
}

// ---- Role hooks: how data paths and the service monitor plug into the agent ----

/** Where local service health comes from (the service monitor, or a fixed answer). */
export interface HealthSource {
  healthy(): boolean;
  /** A service failed beyond its restart budget: hand the primary role over. */
  escalated(): boolean;
  status(): unknown;
  /** Role changes tell the monitor whether to restart/escalate (primary) or only watch. */
  setRole?(role: Role): void;
  /**
   * Maintenance (cluster-wide or this node's own) is on or off: told every decision cycle. A primary
   * keeps its role in maintenance, so this, not the role, pauses its restarts and escalation.
   */
  setPaused?(paused: boolean): void;
}

/**
 * How a data path tells the coordinator's data-holder record whether the standby holds every write
 * acknowledged on it (safety invariant 2). The record names the primary plus the standby only while every
 * synchronous data path says the standby holds everything.
 */
export interface HolderControl {
  /**
   * `peerHolds: false` before this path acknowledges anything the standby may lack (sync degraded);
   * `true` once commits wait for the standby and it has everything acknowledged before. Resolves true
   * when the record says so (or no record is kept: no coordinator), false when the coordinator could not
   * be told: a path must then not acknowledge alone.
   */
  claim(path: string, peerHolds: boolean): Promise<boolean>;
}

/** The peer as data paths reach it: its API URLs, one per heartbeat path, in configuration order. */
export interface PeerRef {
  node: string;
  urls: string[];
  /**
   * The same URLs, those whose heartbeat path answers now first (in configuration order), then the
   * rest: a data path asks this before each transfer so a cut path is left at once, not after its
   * request timeout. Absent: use `urls` as they are.
   */
  ordered?: () => string[];
}

/** Context handed to data-path hooks. */
export interface HookContext {
  node: string;
  epoch: number;
  /** On promotion: why (a failover means the old primary is gone, not about to rejoin). */
  takeover?: 'failover' | 'switchover' | 'failback' | 'bootstrap' | 'recovery';
  peer: PeerRef | null;
  transport: PeerTransport;
  /** The data-holder record (see HolderControl). */
  holders: HolderControl;
  /** The record names the peer: it holds every acknowledged write (e.g. hand over although the local database died). */
  peerIsHolder: boolean;
}

/**
 * A data path (database, repository, files, services started only on the primary) plugs into role
 * changes here. Hooks must be quick or run their long work in the background.
 */
export interface RoleHooks {
  readonly name: string;
  /** After the promotion was granted, before the VIP moves: make this node writable. */
  onPromote?(ctx: HookContext): Promise<void>;
  /** After the VIP was released: stop writes (fenced) or become a standby (rejoin = follow the peer). */
  onDemote?(ctx: HookContext & { to: 'standby' | 'fenced'; rejoin: boolean }): Promise<void>;
  /** Planned handover: stop writes and wait until the peer has everything. Throwing aborts the handover. */
  beforeHandover?(ctx: HookContext): Promise<void>;
  /**
   * A handover was aborted (some data path's beforeHandover threw) and this node stays primary: undo
   * what beforeHandover did (accept writes again). Called on every hook, in reverse order; idempotent.
   */
  onHandoverAborted?(ctx: HookContext): Promise<void>;
  /** On a standby, every decision cycle while a primary is known: follow it (idempotent, quick). */
  onFollow?(ctx: HookContext & { primary: string }): Promise<void>;
  /** True when this node has everything the primary has (used by switchover and fail-back checks). */
  caughtUp?(): boolean;
  /** On the primary: true when the standby has everything this node has on this data path. */
  peerCaughtUp?(): boolean;
  /** Summary for /status and metrics. */
  status?(): Record<string, unknown>;
  /**
   * This path acknowledges writes only once the standby holds them (synchronous mode): the cluster then
   * keeps the data-holder record, and only a holder may be promoted.
   */
  syncMode?(): boolean;
  /** False while this path's local service is down on the primary (counts against the node's health). */
  healthy?(): boolean;
  /** The path gave up repairing its local service: hand the primary role over. */
  escalated?(): boolean;
  /**
   * What the peer needs from this data path, carried in every heartbeat (and shown under the peer in
   * /status). Keep it to a few fields: a heartbeat must stay one small, unfragmented datagram, and it is
   * built, signed and parsed many times a second. A data path without it sends nothing.
   */
  peerStatus?(): Record<string, unknown>;
  /**
   * The peer's peerStatus() for this data path, from every heartbeat that arrives (request or reply,
   * both authenticated). Called often: keep it cheap and non-throwing.
   */
  onPeerStatus?(status: Record<string, unknown> | undefined, info: { heartbeatMs: number }): void;
}

// ---- Port types defined next to the core code that drives them ----
//
// Adapters import from src/ only this file and src/errors.ts (scripts/check-imports.mjs enforces it).
// These types live beside the choreography, sync engine or config that uses them; they are part of what
// an adapter implements or is handed, so they are re-exported here (type-only: no module is loaded).

export type { CloneResult, ManagedDatabase, PrimaryIdentity, ReplicaInfo, SlotInfo } from './replication/db/types.js';
export type { DbConfig } from './replication/db/config.js';
export type { TimelineFork } from './replication/db/lsn.js';
export type { ObjectBody } from './replication/repo/types.js';
export type { FrontGuard, LoneWrite } from './replication/repo/front-guard.js';
export type { DerbyCopy, NimbusStateEngine } from './replication/nimbus-state/types.js';
export type { Probe } from './monitor/probes.js';
export type { NotifyConfig } from './monitor/config.js';
export type { TlsFiles } from './peer/tls.js';
export type { NimbusConfig, NimbusConfigInput } from './config/nimbus.js';
export type { LinuxIpVipConfig } from './config/vip-linux-ip.js';

// ---- Helpers shared with adapters ----
//
// Pure helpers and config schemas that core and adapters both use. Their implementation stays where it
// is; they are re-exported here so adapters reach them through this file. These are value re-exports:
// loading this module loads them too (zod with the schemas; Node built-ins; nothing heavier: no AWS SDK,
// no pg). The CLI's `--help` does not load this module at all; keep these modules light, and do not add
// a re-export that pulls in a large library. The core imports assertNever from src/util/assert-never.ts,
// not from here, so decide() and the monitor load none of these.

export { childEnv } from './util/child-env.js';
export { bytesToLsn, canFollow, lsnToBytes, parseTimelineHistory } from './replication/db/lsn.js';
export { slotNameFor } from './replication/db/wal-names.js';
export { walkFiles } from './replication/nimbus-state/tree.js';
export { DELTA_BLOCK, blockCount, blockRuns, diffBlocks, fileDigest } from './replication/nimbus-state/blocks.js';
export { runWithTimeout, s3Probe } from './monitor/probes.js';
export { nimbusConfigSchema } from './config/nimbus.js';
export { linuxIpVipConfigSchema } from './config/vip-linux-ip.js';
