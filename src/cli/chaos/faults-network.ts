/**
 * Network faults of `nimbus-ha chaos`: heartbeat paths cut or lossy, the witness cut from both nodes
 * (coordinator-blip).
 */
import { sleep } from './load-types.js';
import type { FaultFn } from './fault-common.js';

export const cutPaths = (which: 'one' | 'all' | 'lossy'): FaultFn => async (x) => {
  const dur = x.rng.int(2000, 5000);
  const at = Date.now();
  const proxies = [...x.c.nodes.a.inbound, ...x.c.nodes.b.inbound];
  const chosen = which === 'all' ? proxies : [x.c.nodes.a.inbound[0], x.c.nodes.b.inbound[0]];
  for (const p of chosen) which === 'lossy' ? p.setLoss(0.3) : p.down();
  await sleep(which === 'lossy' ? dur * 2 : dur);
  for (const p of chosen) which === 'lossy' ? p.setLoss(0) : p.up();
  const label = which === 'one' ? 'heartbeat path 1 cut' : which === 'all' ? 'both heartbeat paths cut' : 'heartbeat path 1 at 30 % loss';
  return { fault: `${label} for ${which === 'lossy' ? dur * 2 : dur} ms`, violations: [], at, notes: {} };
};

/** The witness unreachable from both nodes: a healthy primary must stay primary (coordinator-blip). */
export const witnessCut = (expectStable: boolean): FaultFn => async (x, p) => {
  const dur = Math.max(3000, x.leaseMs * x.rng.int(3, 6));
  const epochBefore = (await x.c.status(p))?.epoch;
  const at = Date.now();
  x.c.nodes.a.witnessLink?.down();
  x.c.nodes.b.witnessLink?.down();
  await sleep(dur);
  const during = await x.c.status(p);
  x.c.nodes.a.witnessLink?.up();
  x.c.nodes.b.witnessLink?.up();
  const violations: string[] = [];
  if (expectStable && during?.role !== 'primary') violations.push(`primary ${p} left the role while only the witness was unreachable (role ${during?.role ?? 'down'}: ${during?.reason ?? ''})`);
  if (expectStable && during?.epoch !== epochBefore) violations.push(`epoch moved ${epochBefore} -> ${during?.epoch} during a witness cut`);
  return { fault: `witness cut from both nodes for ${dur} ms`, violations, at, notes: {} };
};
