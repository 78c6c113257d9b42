import { tlsCrossChecks, type ClusterConfig } from './schema.js';
import type { ConfigProblem } from './load.js';
import { accessSync, constants } from 'node:fs';
import { readSecretFile } from './secrets.js';

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
  if (cfg.peers.length === 1 && !cfg.witness && !cfg.coordinator && !cfg.quorum.allowTwoNodeWithoutWitness) {
    p.push({
      key: 'witness',
      problem: 'is missing for a two-node cluster (expected witness.url, or coordinator: { kind: etcd, endpoints, prefix }, or quorum.allowTwoNodeWithoutWitness: true to accept split-brain risk on partitions)',
    });
  }
  p.push(...coordinatorChecks(cfg));
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

/**
 * The etcd coordinator (docs/etcd.md): one third vote only, TLS and endpoints agreeing, a password from
 * exactly one place, and a request timeout an etcd renewal fits in (a keep-alive and a quorum read: two
 * round trips to the etcd leader). A lease under a second is accepted: etcd counts whole seconds, so it
 * holds the lease longer than the node does (safe; a takeover after a crash then waits for etcd's TTL).
 */
function coordinatorChecks(cfg: ClusterConfig): ConfigProblem[] {
  const c = cfg.coordinator;
  if (!c) return [];
  const p: ConfigProblem[] = [];
  if (cfg.witness) p.push({ key: 'coordinator', problem: 'is set together with witness (expected one third vote: either witness or coordinator)' });
  const https = c.endpoints.filter((e) => e.startsWith('https:')).length;
  if (https !== 0 && https !== c.endpoints.length) p.push({ key: 'coordinator.endpoints', problem: 'mixes http:// and https:// (expected all of one kind)' });
  if (c.tls && https !== c.endpoints.length) p.push({ key: 'coordinator.endpoints', problem: 'has http:// URLs but coordinator.tls is set (expected https:// URLs: nothing is sent in clear text)' });
  if (c.tls && !c.tls.cert !== !c.tls.key) p.push({ key: 'coordinator.tls', problem: 'has only one of cert and key (expected both, or neither when etcd asks no client certificate)' });
  for (const k of ['ca', 'cert', 'key'] as const) {
    const f = c.tls?.[k];
    if (!f) continue;
    try {
      accessSync(f, constants.R_OK);
    } catch (err) {
      p.push({ key: `coordinator.tls.${k}`, problem: `cannot read ${f}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message} (expected a PEM file)` });
    }
  }
  if (c.auth) {
    if (c.auth.password !== undefined && c.auth.passwordFile !== undefined) {
      p.push({ key: 'coordinator.auth.passwordFile', problem: 'is set together with coordinator.auth.password (expected one of them; NHA_ETCD_PASSWORD overrides password)' });
    } else if (c.auth.password === undefined && c.auth.passwordFile === undefined) {
      p.push({ key: 'coordinator.auth.password', problem: 'is not set (expected ${NHA_ETCD_PASSWORD} with NHA_ETCD_PASSWORD exported, or passwordFile: FILE with mode 0600)' });
    } else if (c.auth.passwordFile !== undefined) {
      const r = readSecretFile(c.auth.passwordFile);
      if ('problem' in r) p.push({ key: 'coordinator.auth.passwordFile', problem: r.problem });
    }
  }
  if (cfg.timings.requestTimeoutMs < 100) {
    p.push({
      key: 'timings.requestTimeoutMs',
      problem: `is ${cfg.timings.requestTimeoutMs} with coordinator.kind etcd (expected at least 100: a lease renewal in etcd is a keep-alive and a quorum read; the "lan" profile's 80 ms is too tight, see docs/etcd.md)`,
    });
  }
  return p;
}
