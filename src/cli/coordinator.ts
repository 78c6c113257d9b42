import type { Coordinator, PeerTransport } from '../ports.js';
import type { ClusterConfig, EtcdCoordinatorConfig } from '../config/schema.js';
import { readSecretFile } from '../config/secrets.js';
import { HaError } from '../errors.js';
import { udpUrlOf } from '../peer/udp.js';
import { WitnessCoordinator } from '../../adapters/coordinator/witness-client.js';

/** The node's third vote as configured: the witness, etcd, or none (with its kind for /status). */
export interface ConfiguredCoordinator {
  kind: 'witness' | 'etcd';
  coordinator: Coordinator;
  close(): void;
}

/** The etcd adapter's options from the config: the password read from its file when given there. */
export function etcdOptions(c: EtcdCoordinatorConfig): import('../../adapters/coordinator/etcd.js').EtcdCoordinatorOptions {
  let auth: { user: string; password: string } | undefined;
  if (c.auth) {
    let password = c.auth.password;
    if (password === undefined && c.auth.passwordFile !== undefined) {
      const r = readSecretFile(c.auth.passwordFile);
      if ('problem' in r) throw new HaError('CONFIG_INVALID', `coordinator.auth.passwordFile: ${r.problem}`);
      password = r.value;
    }
    if (password === undefined) throw new HaError('CONFIG_INVALID', 'coordinator.auth.password: is not set (expected NHA_ETCD_PASSWORD exported, or passwordFile: FILE with mode 0600)');
    auth = { user: c.auth.user, password };
  }
  return { endpoints: [...c.endpoints], prefix: c.prefix, ...(c.tls ? { tls: { ...c.tls } } : {}), ...(auth ? { auth } : {}) };
}

/**
 * The coordinator of `cfg`, or null without one. The etcd client (gRPC) is loaded only when
 * `coordinator.kind` is etcd, so the CLI and witness-backed nodes never pay for it.
 */
export async function makeCoordinator(cfg: ClusterConfig, transport: PeerTransport): Promise<ConfiguredCoordinator | null> {
  if (cfg.coordinator?.kind === 'etcd') {
    const { EtcdCoordinator } = await import('../../adapters/coordinator/etcd.js');
    const etcd = await EtcdCoordinator.create(etcdOptions(cfg.coordinator));
    return { kind: 'etcd', coordinator: etcd, close: () => etcd.close() };
  }
  if (cfg.witness) {
    const url = cfg.witness.transport === 'udp' ? udpUrlOf(cfg.witness.url) : cfg.witness.url;
    return { kind: 'witness', coordinator: new WitnessCoordinator(url, transport), close: () => undefined };
  }
  return null;
}
