/**
 * The fault catalogue of `nimbus-ha chaos`. Each fault injects, waits, and undoes what it did (restarts
 * what it killed, resumes what it froze, heals what it cut); the runner then waits for convergence and
 * checks the data. A fault may add expectations of its own (e.g. a coordinator blip must not move the role).
 */
import type { FaultFn } from './fault-common.js';
import { filesGone, massDeleteRepo } from './faults-data.js';
import { cutPaths, witnessCut } from './faults-network.js';
import { coldRestart, doubleCrash, handoverKill, killWholeNode, timelineFork } from './faults-node.js';
import { deadDatabase, flappingHealth, freeze, hungStandby, kill, killWitness, zombiePrimary } from './faults-process.js';

/** The scenarios live by family in faults-*.ts and share fault-common.ts; re-exported so importers of this module keep working. */
export { killNode, killVm, other, recordNamesBoth, type FaultCtx, type FaultResult, type Node } from './fault-common.js';

export function catalogue(degradeAfterMs: number): Record<string, FaultFn> {
  return {
    'kill-sidecar-primary': kill('sidecar', 'primary'),
    'kill-sidecar-standby': kill('sidecar', 'standby'),
    'kill-postgres-primary': kill('postgres', 'primary'),
    'kill-postgres-standby': kill('postgres', 'standby'),
    'kill-cumulus-primary': kill('cumulus', 'primary'),
    'kill-cumulus-standby': kill('cumulus', 'standby'),
    'kill-vm-primary': kill('vm', 'primary'),
    'kill-witness': killWitness,
    'kill-node-primary': killWholeNode,
    'stop-sidecar-primary': freeze('sidecar', 'primary'),
    'stop-sidecar-standby': freeze('sidecar', 'standby'),
    'stop-postgres-primary': freeze('postgres', 'primary'),
    'stop-postgres-standby': freeze('postgres', 'standby'),
    'cut-one-path': cutPaths('one'),
    'cut-both-paths': cutPaths('all'),
    'lossy-path': cutPaths('lossy'),
    'witness-cut': witnessCut(false),
    'cold-restart': coldRestart,
    'switchover-kill': handoverKill('switchover'),
    'failback-kill': handoverKill('failback'),
    // named scenarios
    'coordinator-blip': witnessCut(true),
    'zombie-primary': zombiePrimary,
    'stale-promotion': doubleCrash('stale-first'),
    'cold-start-after-double-crash': doubleCrash('together'),
    'failback-timeline-fork': timelineFork,
    'flapping-health': flappingHealth,
    'mass-delete': massDeleteRepo,
    'mass-delete-files': filesGone('mass-delete'),
    'empty-source-tree': filesGone('empty-tree'),
    'dead-database': deadDatabase,
    'hung-standby': hungStandby(degradeAfterMs),
  };
}

export const SCENARIOS = ['coordinator-blip', 'zombie-primary', 'stale-promotion', 'cold-start-after-double-crash', 'failback-timeline-fork', 'flapping-health', 'mass-delete', 'empty-source-tree', 'dead-database', 'hung-standby'];