import { describe, expect, it } from 'vitest';
import { formatStatus } from '../../src/cli/status-format.js';

const base = { node: 'a', role: 'primary', epoch: 4, healthy: true, reason: 'no action', lease: { votes: 3, voters: 3, majority: 2, remaining_ms: 600 } };

describe('nimbus-ha status (human form)', () => {
  it("shows each node's release and protocol, and says when they differ", () => {
    const out = formatStatus({
      ...base,
      protocol: { version: 2, accepts: [1, 2], release: '0.2.0' },
      mixed_versions: true,
      peers: [{ node: 'b', alive: true, role: 'standby', epoch: 4, healthy: true, caught_up: true, protocol: 1, release: null, incompatible: null, paths: [] }],
    });
    expect(out).toContain('node a   role PRIMARY   epoch 4   healthy yes   release 0.2.0 (protocol 2)');
    expect(out).toContain('MIXED VERSIONS');
    expect(out).toContain('peer b: alive, standby at epoch 4, healthy yes, caught up yes   release unknown (protocol 1)');
  });

  it('an incompatible peer is alive but INCOMPATIBLE, with the reason; a status without versions shows none', () => {
    const out = formatStatus({
      ...base,
      peers: [{ node: 'b', alive: true, role: null, epoch: null, healthy: null, caught_up: null, protocol: 4, release: '0.4.0', incompatible: 'the peer speaks protocol 4', paths: [] }],
    });
    expect(out).toContain('peer b: alive but INCOMPATIBLE, unknown at epoch -');
    expect(out).toContain('  the peer speaks protocol 4');
    expect(out).not.toContain('MIXED');
    expect(out.split('\n')[0]).toBe('node a   role PRIMARY   epoch 4   healthy yes');
  });

  it('names the coordinator by its kind with its health; an older node without a kind shows its witness as before', () => {
    const answer = { granted: true, epoch: 4, holder: 'a', remainingMs: 1000 };
    const etcd = formatStatus({ ...base, witness: { kind: 'etcd', url: 'etcd http://10.0.9.1:2379 /nimbus-ha/p/', health: 'ok', last_answer: answer, last_error: null, age_ms: 40 } });
    expect(etcd).toContain('coordinator etcd http://10.0.9.1:2379 /nimbus-ha/p/ [ok]: epoch 4, holder a');
    const down = formatStatus({ ...base, witness: { kind: 'etcd', url: 'etcd http://10.0.9.1:2379 /nimbus-ha/p/', health: 'unreachable', last_answer: null, last_error: 'timeout', age_ms: 40 } });
    expect(down).toContain('[unreachable]: error: timeout');
    const old = formatStatus({ ...base, witness: { url: 'witness udp://10.0.1.3:8790', last_answer: answer, last_error: null, age_ms: 40 } });
    expect(old).toContain('witness witness udp://10.0.1.3:8790: epoch 4, holder a');
  });
});
