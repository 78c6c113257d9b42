/** Human rendering of /status for `nimbus-ha status`. */
export function formatStatus(s: Record<string, any>, events: Record<string, any>[] = []): string {
  const lines: string[] = [];
  const lease = s.lease ?? {};
  const release = (v: { release?: string | null; protocol?: number | null } | null | undefined) =>
    v && (v.release || v.protocol) ? `   release ${v.release ?? 'unknown'} (protocol ${v.protocol ?? 1})` : '';
  lines.push(
    `node ${s.node}   role ${String(s.role).toUpperCase()}   epoch ${s.epoch}${s.maintenance ? `   MAINTENANCE${s.maintenance_scope === 'node' ? ' (this node only)' : ''}` : ''}   healthy ${s.healthy ? 'yes' : 'NO'}${release(s.protocol ? { release: s.protocol.release, protocol: s.protocol.version } : null)}`,
  );
  if (s.mixed_versions) lines.push('MIXED VERSIONS: the nodes run different releases; finish the upgrade (docs/operations.md, Upgrading nimbus-ha)');
  lines.push(`decision: ${s.reason}`);
  if (s.role === 'primary') lines.push(`lease: ${lease.votes}/${lease.voters} votes (majority ${lease.majority}), ${lease.remaining_ms ?? '∞'} ms left`);
  if (s.vip) lines.push(`vip: ${s.vip.address} ${s.vip.held ? '(held)' : '(not held)'}`);
  for (const p of s.peers ?? []) {
    lines.push(
      `peer ${p.node}: ${p.alive ? (p.incompatible ? 'alive but INCOMPATIBLE' : 'alive') : 'DEAD'}, ${p.role ?? 'unknown'} at epoch ${p.epoch ?? '-'}, healthy ${p.healthy ? 'yes' : 'no'}, caught up ${p.caught_up ? 'yes' : 'no'}${release(p)}`,
    );
    if (p.incompatible) lines.push(`  ${p.incompatible}`);
    for (const path of p.paths ?? []) {
      lines.push(`  path ${path.url.padEnd(28)} ${path.age_ms === null ? 'never answered' : `${path.age_ms} ms ago`}${path.degraded ? '  DEGRADED' : ''}${path.last_error ? `  (${path.last_error})` : ''}`);
    }
  }
  if (s.witness) {
    const a = s.witness.last_answer;
    // Older nodes report no kind: theirs is a witness. `url` already names the kind for etcd.
    const kind = s.witness.kind ?? 'witness';
    const where = kind === 'witness' ? `witness ${s.witness.url}` : `coordinator ${s.witness.url}`;
    const health = s.witness.health ? ` [${s.witness.health}]` : '';
    lines.push(`${where}${health}: ${s.witness.last_error ? `error: ${s.witness.last_error}` : a ? `epoch ${a.epoch}, holder ${a.holder ?? '-'}` : 'not asked yet'}`);
  }
  const services = Array.isArray(s.services) ? s.services : [];
  for (const svc of services) lines.push(`service ${svc.name}: ${svc.healthy ? 'healthy' : 'FAILING'}${svc.restartsInWindow ? `, ${svc.restartsInWindow} restarts in window` : ''}${svc.escalated ? ', ESCALATED' : ''}`);
  for (const [name, r] of Object.entries(s.replication ?? {})) lines.push(`${name}: ${JSON.stringify(r)}`);
  if (events.length) lines.push('recent role changes:');
  for (const e of events) {
    const d = e.details ?? {};
    const timing = ['detect_ms', 'election_ms', 'promote_ms', 'vip_ms'].filter((k) => typeof d[k] === 'number').map((k) => `${k.replace('_ms', '')} ${d[k]} ms`).join(', ');
    lines.push(`  ${e.time} ${e.type} on ${e.node} epoch ${e.epoch}${timing ? ` (${timing})` : ''}: ${e.message}`);
  }
  return lines.join('\n');
}
