import { tlsCrossChecks, type ClusterConfig } from './schema.js';
import type { ConfigProblem } from './load.js';

/** Rules that tie fields together, checked at start and by `config check`. */
export function clusterCrossChecks(cfg: ClusterConfig): ConfigProblem[] {
  const p: ConfigProblem[] = [];
  const t = cfg.timings;
  if (t.deadAfterMs <= t.heartbeatMs * 2) {
    p.push({ key: 'timings.deadAfterMs', problem: `is ${t.deadAfterMs} (expected more than twice timings.heartbeatMs = ${t.heartbeatMs * 2})` });
  }
  if (t.leaseMs <= t.deadAfterMs) {
    p.push({ key: 'timings.leaseMs', problem: `is ${t.leaseMs} (expected more than timings.deadAfterMs = ${t.deadAfterMs}, so a primary fences before the standby may promote)` });
  }
  if (t.requestTimeoutMs >= t.leaseMs) {
    p.push({ key: 'timings.requestTimeoutMs', problem: `is ${t.requestTimeoutMs} (expected less than timings.leaseMs = ${t.leaseMs})` });
  }
  if (cfg.peers.some((peer) => peer.node === cfg.node)) {
    p.push({ key: 'peers', problem: `lists this node ${cfg.node} itself (expected the other node)` });
  }
  // Lists while rotating: no key may serve two of them.
  const shared = (a: readonly string[] | undefined, b: readonly string[] | undefined) => a !== undefined && b !== undefined && a.some((k) => b.includes(k));
  if (shared(cfg.secret, cfg.adminToken)) {
    p.push({ key: 'adminToken', problem: 'is the same as secret (expected a different random value: the admin token must not also sign peer traffic)' });
  }
  if (shared(cfg.dataSecret, cfg.secret)) {
    p.push({ key: 'dataSecret', problem: 'is the same as secret (expected a different random value: the witness holds secret, and must not be able to sign data pushes)' });
  }
  if (shared(cfg.dataSecret, cfg.adminToken)) {
    p.push({ key: 'dataSecret', problem: 'is the same as adminToken (expected a different random value)' });
  }
  if (cfg.dataSecret === undefined && cfg.witness && !cfg.tls) {
    p.push({
      key: 'dataSecret',
      problem:
        'is not set, and a witness is configured without tls: the witness holds secret, which would then also authorize base backups, WAL and file writes to a standby (expected ${NHA_DATA_SECRET} with NHA_DATA_SECRET exported, or dataSecretFile: FILE with mode 0600, the same value on both nodes and not on the witness; or tls: { cert, key, ca })',
    });
  }
  if (cfg.peers.length === 0 && !cfg.quorum.allowSingleNode) {
    p.push({
      key: 'peers',
      problem: 'is empty: this node has no standby (expected the other node as peers: [{ node, urls }], or quorum.allowSingleNode: true to run one node without failover)',
    });
  }
  if (cfg.peers.length === 1 && !cfg.witness && !cfg.quorum.allowTwoNodeWithoutWitness) {
    p.push({
      key: 'witness',
      problem: 'is missing for a two-node cluster (expected witness.url, or quorum.allowTwoNodeWithoutWitness: true to accept split-brain risk on partitions)',
    });
  }
  const names = new Set([cfg.node, ...cfg.peers.map((x) => x.node)]);
  if (cfg.preferredPrimary && !names.has(cfg.preferredPrimary)) {
    p.push({ key: 'preferredPrimary', problem: `is ${cfg.preferredPrimary} (expected one of ${[...names].join(', ')})` });
  }
  const svc = new Set<string>();
  p.push(...tlsCrossChecks(cfg));
  for (const [i, s] of cfg.services.entries()) {
    if (svc.has(s.name)) p.push({ key: `services.${i}.name`, problem: `duplicates ${s.name} (expected unique service names)` });
    svc.add(s.name);
  }
  return p;
}
