import { mkdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { HaError } from '../errors.js';
import { writeJsonDurable } from '../util/durable.js';

/** What a node must remember across crashes to never help two primaries into the same epoch. */
export interface EpochState {
  /** Highest epoch this node has held or adopted. */
  epoch: number;
  /** The vote this node cast most recently (epoch and candidate). */
  votedFor: { epoch: number; node: string } | null;
  /** Maintenance flag survives restarts so a paused cluster stays paused. */
  maintenance: boolean;
  /**
   * Version of the maintenance setting: raised by every change made on either node and carried in the
   * heartbeats, so both nodes hold the newest setting (the higher version wins; `on` wins a tie).
   */
  maintenanceVersion: number;
  /**
   * This node alone paused (`maintenance on --node NAME`): not carried to the peer, kept across restarts.
   * Automation is paused on this node while either flag is on.
   */
  nodeMaintenance: boolean;
}

const EMPTY: EpochState = { epoch: 0, votedFor: null, maintenance: false, maintenanceVersion: 0, nodeMaintenance: false };

/**
 * The file's format, written into it. A release reads every format up to its own and refuses a newer one
 * (written by a later release) instead of misreading it. A file without `format` is format 1.
 */
export const EPOCH_FORMAT = 1;

/**
 * JSON file written with write-to-temp + fsync + rename + fsync(dir), so a crash leaves either the old or
 * the new state, never a torn one. Writes are synchronous on purpose: an epoch must be durable before the
 * node acts on it (promote, vote).
 */
export class EpochStore {
  private state: EpochState;

  constructor(private readonly file: string) {
    mkdirSync(dirname(file), { recursive: true });
    this.state = this.read();
  }

  static inDir(dataDir: string): EpochStore {
    return new EpochStore(join(dataDir, 'epoch.json'));
  }

  get(): Readonly<EpochState> {
    return this.state;
  }

  update(patch: Partial<EpochState>): EpochState {
    const next = { ...this.state, ...patch };
    if (next.epoch < this.state.epoch) {
      throw new HaError('EPOCH_STORE_CORRUPT', `refusing to lower the epoch from ${this.state.epoch} to ${next.epoch}`);
    }
    this.write(next);
    this.state = next;
    return next;
  }

  private read(): EpochState {
    let text: string;
    try {
      text = readFileSync(this.file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { ...EMPTY };
      throw err;
    }
    let format: unknown;
    try {
      format = (JSON.parse(text) as { format?: unknown }).format;
    } catch {
      format = undefined; // reported below
    }
    if (format !== undefined && (typeof format !== 'number' || !Number.isInteger(format) || format > EPOCH_FORMAT)) {
      throw new HaError(
        'EPOCH_STORE_CORRUPT',
        `epoch store ${this.file} has format ${JSON.stringify(format)}, written by a newer release of nimbus-ha; this release reads formats up to ${EPOCH_FORMAT}: run the newer release on this node (downgrading needs the newer release's epoch store moved aside and the epoch restored by hand)`,
      );
    }
    try {
      const j = JSON.parse(text) as Partial<EpochState>;
      if (typeof j.epoch !== 'number' || !Number.isInteger(j.epoch) || j.epoch < 0) throw new Error('epoch is not a non-negative integer');
      const mv = j.maintenanceVersion;
      return {
        epoch: j.epoch,
        votedFor: j.votedFor ?? null,
        maintenance: j.maintenance === true,
        maintenanceVersion: typeof mv === 'number' && Number.isInteger(mv) && mv >= 0 ? mv : 0,
        nodeMaintenance: j.nodeMaintenance === true,
      };
    } catch (err) {
      throw new HaError(
        'EPOCH_STORE_CORRUPT',
        `epoch store ${this.file} is unreadable (${(err as Error).message}); restore it from the peer's epoch or remove it only if this node was never primary`,
      );
    }
  }

  private write(s: EpochState): void {
    writeJsonDurable(this.file, { format: EPOCH_FORMAT, ...s });
  }
}
