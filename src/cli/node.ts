import type { Server } from 'node:http';
import type { Server as HttpsServer } from 'node:https';
import { dirname, join } from 'node:path';
import type { Router } from 'express';
import pino from 'pino';
import type { Notifier, ObjectStore, Vip } from '../ports.js';
import { HaError, errorMessage } from '../errors.js';
import { ReplayGuard } from '../peer/replay.js';
import { KeyUse } from '../peer/keyring.js';
import { childEnv } from '../util/child-env.js';
import { buildServices, probePeriods } from './services.js';
import type { RepoStoreConfig } from '../replication/repo/config.js';
import { systemClock } from '../clock.js';
import { EventBus, readHistory } from '../events/bus.js';
import { DiskWatch } from '../monitor/disk.js';
import { EpochStore } from '../cluster/epoch-store.js';
import { Agent } from '../cluster/agent.js';
import type { HealthSource, RoleHooks } from '../ports.js';
import { createApp } from '../api/app.js';
import { createMetrics, type MetricsExtension } from '../api/metrics.js';
import { PeerClient } from '../peer/client.js';
import { loadTls } from '../peer/tls.js';
import { TlsReloader } from '../peer/tls-reload.js';
import { listenServer, serverTlsOptions } from '../api/server.js';
import { UdpServer } from '../peer/udp.js';
import { isHeartbeatMessage } from '../cluster/heartbeat.js';
import type { ClusterConfig, VipConfig } from '../config/schema.js';
import { BindProxyVip } from '../../adapters/vip/bind-proxy.js';
import { CommandVip } from '../../adapters/vip/command.js';
import { LinuxIpVip } from '../../adapters/vip/linux-ip.js';
import { VipGroup } from '../../adapters/vip/group.js';
import { makeCoordinator } from './coordinator.js';

/** The node's advertised addresses: `vip` plus `vips`, moved together. */
export function makeVips(cfg: ClusterConfig): Vip | null {
  const all = [cfg.vip, ...cfg.vips].map(makeVip).filter((v): v is Vip => v !== null);
  if (all.length === 0) return null;
  return all.length === 1 ? all[0] : new VipGroup(all);
}

export function makeVip(cfg: VipConfig | ClusterConfig['vips'][number]): Vip | null {
  switch (cfg.kind) {
    case 'none':
      return null;
    case 'bind-proxy':
      return new BindProxyVip(cfg.listen, cfg.target);
    case 'command':
      return new CommandVip(cfg);
    case 'linux-ip':
      return new LinuxIpVip(cfg);
    default: {
      const never: never = cfg;
      throw new Error(`unknown vip kind ${JSON.stringify(never)}`);
    }
  }
}

export async function makeStore(c: RepoStoreConfig): Promise<ObjectStore> {
  const { S3Store } = await import('../../adapters/cumulus/s3-store.js');
  return new S3Store({
    endpoint: c.endpoint,
    region: c.region,
    bucket: c.bucket,
    forcePathStyle: c.forcePathStyle,
    accessKeyId: c.accessKeyId,
    secretAccessKey: c.secretAccessKey,
    signatureVersion: c.signatureVersion,
    multipart: c.multipart,
    partSize: c.partSize,
    multipartThreshold: c.multipartThreshold,
  });
}

export interface RunningNode {
  agent: Agent;
  bus: EventBus;
  url: string;
  stop(): Promise<void>;
}

export interface NodeExtras {
  health?: HealthSource;
  hooks?: RoleHooks[];
  peerRouters?: Record<string, Router>;
  streamPeerRouters?: Record<string, Router>;
  metrics?: MetricsExtension[];
  /** Called once the agent exists (wire monitors and replicators that need it). */
  onAgent?: (agent: Agent, bus: EventBus) => void;
  onStop?: () => Promise<void>;
}

const alwaysHealthy: HealthSource = { healthy: () => true, escalated: () => false, status: () => [] };

/** Compose a sidecar from its config: epoch store, event bus, transport, witness, VIP, agent, API. */
export async function startNode(cfg: ClusterConfig, extras: NodeExtras = {}): Promise<RunningNode> {
  const dest = pino.destination(2);
  dest.on('error', () => undefined); // stderr on a full disk must not stop the sidecar (pino already drops EPIPE)
  const log = pino({ level: cfg.log.level, base: { node: cfg.node } }, dest);
  const store = EpochStore.inDir(cfg.dataDir);
  // Adapters with large dependencies are loaded only when the config uses them (idle memory).
  const notify: { notifiers: Notifier[]; notifyTypes: string[] | undefined; close(): void } =
    cfg.notify.webhook || cfg.notify.email
      ? (await import('../../adapters/notify/index.js')).createNotifiers(cfg.notify)
      : { notifiers: [], notifyTypes: undefined, close: () => undefined };
  const historyFile = cfg.history.file ?? join(cfg.dataDir, 'events.jsonl');
  const bus = new EventBus(cfg.node, () => store.get().epoch, {
    historyFile,
    historyMaxBytes: cfg.history.maxBytes,
    historyFiles: cfg.history.files,
    ringSize: cfg.history.keep,
    notifiers: notify.notifiers,
    notifyTypes: notify.notifyTypes,
    onNotifyError: (name, event, err) => log.warn({ code: 'NOTIFY_FAILED', notifier: name, event: event.type }, (err as Error).message),
  });
  const nimbus = cfg.nimbus
    ? new (await import('../../adapters/nimbus/controller.js')).NimbusServiceController({ ...cfg.nimbus, name: 'nimbus', env: childEnv(cfg.nimbus.env) })
    : null;
  const periods = probePeriods(cfg);
  const services = buildServices(
    periods.services,
    bus,
    systemClock,
    nimbus && cfg.nimbus
      ? [{ service: { controller: nimbus, intervalMs: periods.nimbusMs, timeoutMs: cfg.nimbus.monitor.timeoutMs, policy: cfg.nimbus.monitor }, runOn: 'primary' }]
      : [],
  );
  bus.on((e) => {
    const level = e.severity === 'critical' ? 'warn' : 'info';
    log[level]({ event: e.type, epoch: e.epoch, ...(e.details ? { details: e.details } : {}) }, e.message);
  });
  // With tls: the API serves https, peers are reached over mutual TLS (docs/security.md).
  const tls = cfg.tls ? loadTls(cfg.tls) : null;
  // Lease traffic is signed with `secret` (the witness has it), the data paths with `dataSecret`.
  const transport = new PeerClient(cfg.node, cfg.secret, { tls, ...(cfg.dataSecret ? { dataSecret: cfg.dataSecret } : {}) });
  const configured = await makeCoordinator(cfg, transport);
  const coordinator = configured?.coordinator ?? null;
  const vip = makeVips(cfg);
  const hooks: RoleHooks[] = [services.hooks, ...(extras.hooks ?? [])];
  const agent = new Agent({
    config: cfg,
    clock: systemClock,
    store,
    bus,
    transport,
    coordinator,
    vip,
    health: extras.health ?? (cfg.services.length || nimbus ? services.health : alwaysHealthy),
    hooks,
    log,
  });
  extras.onAgent?.(agent, bus);
  const dataPaths: { close(): Promise<void> }[] = [];
  // Users of the TLS files besides the API server and the peer client (renewed certificates reach them too).
  let repoFront: { setTls(t: { cert: string; key: string; ca: string }): void } | null = null;
  let dbPath: { reloadTls(): Promise<void> } | null = null;
  const streamRouters: Record<string, Router> = { ...(extras.streamPeerRouters ?? {}) };
  const peerRouters: Record<string, Router> = { ...(extras.peerRouters ?? {}) };
  if (cfg.repo && cfg.repo.enabled && cfg.repo.peer) {
    const { RepoDataPath } = await import('../replication/repo/data-path.js');
    const repoCfg = cfg.repo;
    const frontCfg = repoCfg.mode === 'sync' ? repoCfg.front : undefined;
    const { RepoFront } = await import('../../adapters/cumulus/front.js');
    const backend = (c: RepoStoreConfig) => ({ endpoint: c.endpoint, accessKeyId: c.accessKeyId ?? '', secretAccessKey: c.secretAccessKey ?? '' });
    const repo = new RepoDataPath({
      config: repoCfg,
      local: await makeStore(repoCfg.local),
      peer: await makeStore(cfg.repo.peer),
      bus,
      clock: systemClock,
      tombstoneFile: join(cfg.dataDir, 'repo-tombstones.jsonl'),
      ...(frontCfg
        ? {
            front: (guard, journal) =>
              (repoFront = new RepoFront({
                host: frontCfg.listen.host,
                port: frontCfg.listen.port,
                local: backend(repoCfg.local),
                peer: backend(repoCfg.peer!),
                guard,
                journal,
                maxClockSkewMs: frontCfg.maxClockSkewMs,
                // With tls the front (the repository VIP's target) serves HTTPS with the node's certificate.
                ...(tls ? { tls: { cert: tls.cert, key: tls.key, ca: tls.ca } } : {}),
              })),
          }
        : {}),
    });
    await repo.start();
    hooks.push(repo);
    peerRouters.repo = repo.router;
    dataPaths.push(repo);
  }
  if (cfg.db) {
    const { PostgresNode } = await import('../../adapters/postgres/embedded.js');
    const { DbDataPath } = await import('../replication/db/data-path.js');
    const db = new DbDataPath({
      node: cfg.node,
      peerNode: cfg.peers[0]?.node ?? null,
      config: cfg.db,
      // With tls the server runs with SSL and replication requires it (docs/security.md).
      db: new PostgresNode(cfg.node, cfg.db, cfg.tls ? { tls: cfg.tls } : {}),
      bus,
      clock: systemClock,
      peerEndpoint: cfg.db.peer ?? null,
    });
    // The database is promoted first (services need it writable) and before the VIP moves.
    hooks.unshift(db);
    streamRouters.db = db.router;
    dataPaths.push(db);
    dbPath = db;
  }
  if (cfg.files && cfg.files.trees.length) {
    const { FilesDataPath } = await import('../replication/files/data-path.js');
    const files = new FilesDataPath({
      config: cfg.files,
      transport,
      events: bus,
      clock: systemClock,
      quarantineDir: join(cfg.dataDir, 'quarantine', 'files'),
      isStandby: () => agent.role === 'standby',
    });
    hooks.push(files);
    streamRouters.files = files.router;
    dataPaths.push(files);
  }
  if (cfg.nimbusState) {
    const { NimbusStateDataPath } = await import('../replication/nimbus-state/data-path.js');
    const { nimbusStateEngine } = await import('../../adapters/nimbus/state-engine.js');
    const nimbusState = new NimbusStateDataPath({
      config: cfg.nimbusState,
      stagingDir: join(cfg.dataDir, 'nimbus-state'),
      engine: nimbusStateEngine(cfg.nimbusState),
      transport,
      events: bus,
      isStandby: () => agent.role === 'standby',
    });
    await nimbusState.start();
    hooks.push(nimbusState);
    streamRouters['nimbus-state'] = nimbusState.router;
    dataPaths.push(nimbusState);
  }
  await bus.loadHistory().catch(() => 0);
  const disk = new DiskWatch({
    volumes: [
      { name: 'data', path: cfg.dataDir },
      { name: 'history', path: dirname(historyFile) },
      { name: 'quarantine', path: cfg.files?.quarantineDir ?? join(cfg.dataDir, 'quarantine') },
      ...(cfg.db ? [{ name: 'db', path: cfg.db.dataDir }, { name: 'archive', path: cfg.db.archiveDir }] : []),
    ],
    warnPercent: cfg.disk.warnPercent,
    criticalPercent: cfg.disk.criticalPercent,
    emit: (e) => bus.emit(e),
  });
  disk.start(cfg.disk.intervalMs);
  const metrics = createMetrics(agent, bus, [...(extras.metrics ?? []), disk.metrics()]);
  // One replay guard for HTTP and UDP: nothing signed before this start, nor before a sender's last mark.
  const replay = new ReplayGuard(join(cfg.dataDir, 'replay-marks.json'));
  // A peer moving to another key (a rotation step) is an event: who signs with which key id now.
  const keyChanged = (which: 'secret' | 'dataSecret') => (node: string, keyId: string, before: string | null) => {
    if (before !== null) bus.emit({ type: 'peer_key_changed', severity: 'info', message: `${node} signs its ${which === 'secret' ? 'lease' : 'data'} traffic with key id ${keyId} now (was ${before})`, details: { peer: node, key: which, keyId, before } });
  };
  const keyUse = { lease: new KeyUse(cfg.secret, keyChanged('secret')), data: cfg.dataSecret ? new KeyUse(cfg.dataSecret, keyChanged('dataSecret')) : null };
  const app = createApp({
    agent,
    bus,
    metrics,
    secret: cfg.secret,
    ...(cfg.dataSecret ? { dataSecret: cfg.dataSecret } : {}),
    adminToken: cfg.adminToken,
    keyUse,
    peerRouters,
    streamPeerRouters: streamRouters,
    node: cfg.node,
    replay,
    onInternalError: (err, req) => log.error({ code: 'INTERNAL', url: req.originalUrl }, errorMessage(err)),
    history: () => readHistory(historyFile, { files: cfg.history.files, limit: 20_000, maxBytes: 8 * 1024 * 1024 }),
  });
  const { server, port, url }: { server: Server; port: number; url: string } = await listenServer(app, cfg.listen, tls, (err) =>
    log.error({ err: err.message }, 'the API server could not accept a connection'),
  );
  // Renewed certificates are taken without a restart (polled, and at once on SIGHUP).
  const tlsReloader = tls
    ? new TlsReloader(tls, {
        onReload: (m) => {
          (server as HttpsServer).setSecureContext(serverTlsOptions(m));
          transport.setTls(m);
          repoFront?.setTls({ cert: m.cert, key: m.key, ca: m.ca });
          if (dbPath) {
            void dbPath.reloadTls().catch((err: unknown) =>
              bus.emit({ type: 'tls_reload_failed', severity: 'warning', message: `PostgreSQL did not take the renewed TLS files: ${errorMessage(err)}` }),
            );
          }
          bus.emit({ type: 'tls_reloaded', severity: 'info', message: `TLS files reloaded: ${m.files.cert} valid until ${m.notAfter.toISOString()}`, details: { names: m.names, notAfter: m.notAfter.toISOString() } });
        },
        onProblem: (problems) =>
          bus.emit({
            type: 'tls_reload_failed',
            severity: 'warning',
            message: `the TLS files changed but are not a valid set; still using the previous ones: ${problems.map((p) => `tls.${p.field}: ${p.problem}`).join('; ')}`,
            details: { problems },
          }),
      })
    : null;
  tlsReloader?.start();
  // SIGHUP (systemctl reload) never stops the sidecar: without tls there is nothing to reload.
  const onHup = () => {
    if (tlsReloader) tlsReloader.check();
    else log.info('SIGHUP: nothing to reload (no tls configured)');
  };
  process.on('SIGHUP', onHup);
  // Heartbeats also arrive as signed datagrams on the same port number (peers[].heartbeat: udp).
  const udp = new UdpServer(
    cfg.node,
    cfg.secret,
    {
      '/peer/heartbeat': (body, from) => {
        if (!isHeartbeatMessage(body, from)) return { status: 400, body: { error: 'USAGE', message: 'malformed heartbeat' } };
        return { status: 200, body: agent.receiveHeartbeat(body) };
      },
    },
    (reason, from) => bus.emit({ type: 'peer_auth_failed', severity: 'warning', message: `rejected heartbeat datagram from ${from}: ${reason}` }),
    replay,
    keyUse.lease,
    (node, protocol, release, problem) => agent.peerProtocol(node, protocol, release, problem),
  );
  try {
    await udp.listen(cfg.listen.host, port);
  } catch (err) {
    server.close();
    throw new HaError('CONFIG_INVALID', `listen: cannot bind UDP ${cfg.listen.host}:${port} for heartbeats (the API's port number, UDP): ${(err as Error).message}`);
  }
  services.start();
  await agent.start();
  log.info({ url, epoch: store.get().epoch, vip: vip?.describe() ?? 'none' }, `nimbus-ha ${cfg.node} listening`);
  return {
    agent,
    bus,
    url,
    async stop() {
      await agent.stop();
      disk.stop();
      udp.close();
      replay.close();
      tlsReloader?.stop();
      process.off('SIGHUP', onHup);
      await services.stop();
      for (const p of dataPaths) await p.close();
      await extras.onStop?.();
      notify.close();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      transport.close();
      configured?.close();
      await vip?.close();
      await bus.flush();
    },
  };
}
