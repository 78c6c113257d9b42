/**
 * What every fault scenario of `nimbus-ha chaos` shares: the node names, the context the runner hands
 * each fault, the result it returns, and the small kills and waits several fault families use.
 */
import type { Cluster } from '../../../fixtures/cluster.js';
import type { Rng } from './rng.js';
import { sleep, type DbCounter } from './load-types.js';

export type Node = 'a' | 'b';
export const other = (n: Node): Node => (n === 'a' ? 'b' : 'a');

export interface FaultCtx {
  c: Cluster;
  rng: Rng;
  leaseMs: number;
  rows: DbCounter;
  log: (msg: string) => void;
  /** The current primary (by /status), waiting up to `ms` for one. */
  primary(ms?: number): Promise<Node | null>;
  /** Waits until `n` answers /status with role primary. */
  waitPrimary(n: Node, ms: number): Promise<boolean>;
  /** Restarts whatever of the stack is not running (sidecars, Cumulus, witness). */
  restoreAll(): void;
}

export interface FaultResult {
  /** What was done, e.g. "kill -9 postgres on a (primary)". */
  fault: string;
  /** Node that was primary before the fault. */
  before: Node | null;
  /** Expectations of this scenario that did not hold. */
  violations: string[];
  /** Instant (Date.now) of the first injection. */
  at: number;
  /** Extra observations (guard events...). */
  notes: Record<string, unknown>;
}

export type FaultFn = (x: FaultCtx, p: Node) => Promise<Omit<FaultResult, 'before' | 'at'> & { at?: number }>;

/**
 * Whether a node's /status says the data-holder record names both nodes (or that no record is kept). A
 * cycle counts as converged only then: a standby the record leaves out may lack acknowledged writes and
 * rightly refuses to promote, so a double fault started before it is named again tests nothing.
 */
export function recordNamesBoth(s: Record<string, any> | null | undefined): boolean {
  const h = s?.data_holders;
  if (!h || h.kept !== true) return true;
  return Array.isArray(h.holders) && h.holders.includes('a') && h.holders.includes('b');
}

export function killVm(c: Cluster, n: Node): void {
  c.killVmService(n);
}

export function killNode(c: Cluster, n: Node): void {
  c.kill(n, true);
  c.killDb(n);
  c.killVmService(n);
}

export async function rowsAcked(x: FaultCtx, more: number, ms: number): Promise<boolean> {
  const base = x.rows.count();
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (x.rows.count() >= base + more) return true;
    await sleep(50);
  }
  return false;
}
