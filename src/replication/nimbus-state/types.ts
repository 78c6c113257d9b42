/** What the nimbus-state data path needs from Derby, sqlite and the OS (adapters/nimbus implements it). */
export interface NimbusStateEngine {
  /** Point-in-time copy of `source` into `target` (incremental: target holds the previous copy). */
  derbyCopy(o: { name: string; source: string; target: string; pidFile?: string; maxPauseMs: number }): Promise<{ takenAt: number; pauseMs: number; frozen: boolean }>;
  /** Boots every Derby database under `dir` and checks every table; throws with the reason. */
  derbyVerify(dir: string): Promise<{ databases: number; rows: Record<string, number> }>;
  /** Online backup of a live sqlite database; returns how long it took. */
  sqliteBackup(src: string, dst: string): Promise<{ ms: number }>;
  sqliteCheck(db: string): Promise<void>;
  sqliteDataKeys(db: string): Promise<string[]>;
  sqliteRebase(db: string, from: string, to: string): Promise<number>;
}

export class NimbusStateError extends Error {
  readonly code = 'NIMBUS_STATE_FAILED';
  constructor(message: string, readonly status = 500) {
    super(message);
    this.name = 'NimbusStateError';
  }
}
