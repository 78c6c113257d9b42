/**
 * The file-sync sender's (sender.ts) options, status and per-tree record, and how a configured standby
 * URL becomes the function asked before each request.
 */
import type { Clock, PeerTransport } from '../../ports.js';
import type { FilesConfig, FilesTreeConfig } from './config.js';
import type { EventSink } from './receiver.js';
import type { WatchedTree } from './tree-watch.js';
import type { GuardedTree } from './sender-guard.js';

/** Where the standby is reached: a URL, a function asked before each request, or null (no standby). */
export type PeerUrl = string | null | (() => string | null);
export type PeerFn = () => string;

type GuardConfig = Pick<FilesConfig, 'maxDeleteFraction' | 'deletesAlwaysAllowed' | 'maxDeletesPerWindow' | 'deleteWindowMs' | 'allowEmptySource'>;

export interface FileSyncSenderOptions {
  /** The `files` config section (trees, batchMs, maxBatchMs, largeFileBytes). */
  config: Pick<FilesConfig, 'trees' | 'batchMs' | 'maxBatchMs' | 'largeFileBytes'> & Partial<GuardConfig> & Partial<Pick<FilesConfig, 'fullPassIntervalMs'>>;
  /** Signed peer transport (PeerClient in production). */
  transport: PeerTransport;
  /**
   * Base URL of the standby's sidecar, or a function asked before each request (the peer's URLs whose
   * heartbeat path answers now first: a cut path is left at once), or null while there is no standby.
   */
  peerUrl?: PeerUrl;
  /** A path of a tree was deleted on this node (watcher); merge-back never brings such a path back. */
  onGone?: (tree: string, rel: string) => void;
  /** A path of a tree was shipped as present (written since, or found in a full pass): its tombstone goes. */
  onWritten?: (tree: string, rel: string) => void;
  /** Where the receiver's router is mounted. Default "/peer/files". */
  basePath?: string;
  events?: EventSink;
  clock?: Clock;
  /** Timeout of one JSON request. Default 15 s. */
  requestTimeoutMs?: number;
  /** First retry delay after a failure; doubles up to retryMaxMs. Defaults 500 ms / 10 s. */
  retryMinMs?: number;
  retryMaxMs?: number;
  /** How often each tree's root is checked for being replaced, re-mounted or gone. Default 1000 ms. */
  rootCheckMs?: number;
}

export interface FileSenderStatus {
  peer: string | null;
  running: boolean;
  /** Paths changed here and not yet confirmed by the standby (0 when in sync). */
  filesBehind: number;
  /** Whether a full pass is due (after start, a peer change or a failure). */
  fullPassPending: boolean;
  lastPassAt: string | null;
  /** Duration of the last successful shipment (batch or pass), in ms. */
  lastShipMs: number | null;
  lastShipAt: string | null;
  lastError: string | null;
  passes: number;
  entriesShipped: number;
  bytesShipped: number;
  /** Symlinks not synced because they point outside their tree. */
  linksSkipped: number;
  /** Deletes the delete guard holds back: the standby still has these paths. */
  deletesHeld: number;
  /** Why the delete guard last refused, or null. */
  lastGuard: string | null;
  /** Trees whose root directory is missing on this node. */
  rootsMissing: string[];
  /**
   * The standby holds exactly what this node has: a full pass has run since start, nothing is pending,
   * in flight, held back by the delete guard or failing, and every root is in place.
   */
  inSync: boolean;
}

/** What the sender keeps per tree: the watcher's and the delete guard's records, and the paths changed since the last flush. */
export interface SenderTree extends WatchedTree, GuardedTree {
  cfg: FilesTreeConfig;
  pending: Set<string>;
}

/** A PeerUrl as the function asked before each request (null: no standby). */
export function toPeerFn(p: PeerUrl): (() => string | null) | null {
  if (p === null) return null;
  return typeof p === 'function' ? p : () => p;
}
