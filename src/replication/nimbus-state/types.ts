/** What the nimbus-state data path needs from Derby, sqlite and the OS (adapters/nimbus implements it). */
export interface NimbusStateEngine {
  /**
   * Point-in-time copy of `source` into `target`, incremental per 4 KiB block (target holds the previous
   * copy). Reports every file with its digest (blocks.ts fileDigest) and the blocks written since the
   * previous successful call; `fresh` when the copy started empty (then every block is new).
   */
  derbyCopy(o: { name: string; source: string; target: string; pidFile?: string; maxPauseMs: number }): Promise<DerbyCopy>;
  /** Boots every Derby database under `dir` and checks every table; throws with the reason. */
  derbyVerify(dir: string): Promise<{ databases: number; rows: Record<string, number> }>;
  /** Boots every Derby database under `dir` (crash recovery) and shuts it down, without the table check; throws with the reason. */
  derbyBoot(dir: string): Promise<{ databases: number }>;
  /** Online backup of a live sqlite database; returns how long it took. */
  sqliteBackup(src: string, dst: string): Promise<{ ms: number }>;
  sqliteCheck(db: string): Promise<void>;
  sqliteDataKeys(db: string): Promise<string[]>;
  sqliteRebase(db: string, from: string, to: string): Promise<number>;
  /** Ends helper processes (the verifier JVM). */
  close?(): Promise<void>;
}

export interface DerbyCopy {
  takenAt: number;
  pauseMs: number;
  frozen: boolean;
  fresh: boolean;
  files: { path: string; size: number; digest: string }[];
  /** Block indices written since the previous successful copy, per file. */
  changed: Map<string, number[]>;
  /** Bytes written into the copy under the freeze. */
  bytesPaused: number;
  /** Freezes given up for exceeding maxPauseMs before this copy (the service was stopped that long too). */
  abandonedPausesMs?: number[];
}

/** Why a standby refused a unit: the sender falls back to a full copy for these. */
export type RefusalReason = 'base-mismatch' | 'delta-missing';

export class NimbusStateError extends Error {
  readonly code = 'NIMBUS_STATE_FAILED';
  constructor(message: string, readonly status = 500, readonly reason?: RefusalReason) {
    super(message);
    this.name = 'NimbusStateError';
  }
}
