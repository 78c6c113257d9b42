import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { ownProtocol } from '../peer/protocol.js';
import type { Agent } from '../cluster/agent.js';
import { IMPORTANT_EVENT_TYPES, type EventBus } from '../events/bus.js';
import type { Role } from '../ports.js';

const ROLES: Role[] = ['starting', 'standby', 'primary', 'fenced', 'maintenance'];
/** The events that count as a promotion of this node, by kind (nimbus_ha_failovers_total). */
const PROMOTION_KINDS = ['failover', 'switchover', 'failback', 'promoted'] as const;

/** Extra gauges a data path registers (repository lag, files behind...). */
export type MetricsExtension = (registry: Registry) => void;

/**
 * Prometheus metrics. Gauges are computed when scraped (collect callbacks), so an idle sidecar does no
 * metric work between scrapes.
 */
export function createMetrics(agent: Agent, bus: EventBus, extensions: MetricsExtension[] = []): Registry {
  const registry = new Registry();
  // prom-client's event-loop-lag sampler wakes the process at this resolution (its default, 10 ms, alone
  // would cost an idle sidecar more CPU than its heartbeats; even 1 s was one of an idle node's five or
  // six wake-ups a second). Every 10 s it still feeds nimbus_ha_nodejs_eventloop_lag_*; the lag that
  // matters for failure detection is nimbus_ha_heartbeat_timer_lag_seconds below, measured on the
  // heartbeat timer's own wake-ups.
  collectDefaultMetrics({ register: registry, prefix: 'nimbus_ha_', eventLoopMonitoringPrecision: 10_000 });
  // prom-client also exports these three sums as gauges named *_total, which Prometheus's naming rules
  // (promtool check metrics) keep for counters; sum(nimbus_ha_nodejs_active_resources) etc. give them.
  for (const name of ['nodejs_active_resources_total', 'nodejs_active_handles_total', 'nodejs_active_requests_total']) registry.removeSingleMetric(`nimbus_ha_${name}`);
  new Gauge({
    name: 'nimbus_ha_heartbeat_timer_lag_seconds',
    help: 'largest delay of the heartbeat timer behind its schedule since the last scrape (event-loop lag at heartbeat granularity)',
    registers: [registry],
    collect() {
      this.set(agent.takeTickLagMax() / 1000);
    },
  });
  new Gauge({
    name: 'nimbus_ha_role',
    help: '1 for the current role of this node, 0 for the others',
    labelNames: ['role'],
    registers: [registry],
    collect() {
      for (const r of ROLES) this.set({ role: r }, agent.role === r ? 1 : 0);
    },
  });
  new Gauge({
    name: 'nimbus_ha_epoch',
    help: 'current epoch of this node',
    registers: [registry],
    collect() {
      this.set(agent.epoch);
    },
  });
  new Gauge({
    name: 'nimbus_ha_witness_unreachable',
    help: '1 while the witness (coordinator) has not answered for more than three lease times: a failover now needs it back',
    registers: [registry],
    collect() {
      this.set(agent.witnessUnreachable() ? 1 : 0);
    },
  });
  const me = ownProtocol();
  new Gauge({
    name: 'nimbus_ha_build_info',
    help: 'always 1: the release of nimbus-ha this node runs and the peer protocol version it speaks',
    labelNames: ['release', 'protocol'],
    registers: [registry],
    collect() {
      this.set({ release: me.release, protocol: String(me.version) }, 1);
    },
  });
  new Gauge({
    name: 'nimbus_ha_peer_protocol_version',
    help: 'the peer protocol version the peer last stated (1: a release from before versions were stated); no series before the peer was heard',
    labelNames: ['peer', 'release'],
    registers: [registry],
    collect() {
      this.reset();
      const v = agent.peerVersion;
      const peer = agent.d.config.peers[0]?.node;
      if (v && peer) this.set({ peer, release: v.release ?? 'unknown' }, v.protocol);
    },
  });
  new Gauge({
    name: 'nimbus_ha_peer_incompatible',
    help: '1 while the peer is alive but speaks a protocol version this node does not share (no promotion on it): finish the upgrade',
    registers: [registry],
    collect() {
      this.set(agent.peerIncompatible() ? 1 : 0);
    },
  });
  new Gauge({
    name: 'nimbus_ha_data_holder',
    help: 'the data-holder record as the coordinator last reported it: 1 for each node named (it holds every acknowledged write); no series while no record is kept',
    labelNames: ['node'],
    registers: [registry],
    collect() {
      this.reset();
      const record = agent.holderRecordKept() ? agent.dataHolders() : null;
      if (!record) return;
      const nodes = new Set([agent.d.config.node, ...agent.d.config.peers.map((p) => p.node)]);
      for (const n of nodes) this.set({ node: n }, record.includes(n) ? 1 : 0);
    },
  });
  new Gauge({
    name: 'nimbus_ha_heartbeat_age_seconds',
    help: 'time since the last successful heartbeat round trip, per peer path',
    labelNames: ['peer', 'path'],
    registers: [registry],
    collect() {
      this.reset();
      for (const p of agent.pathAgesMs()) this.set({ peer: p.peer, path: p.url }, p.ageMs === null ? -1 : p.ageMs / 1000);
    },
  });
  new Gauge({
    name: 'nimbus_ha_replication_lag_seconds',
    help: 'largest replication lag reported by the data paths (database, repository, files)',
    registers: [registry],
    collect() {
      const lag = agent.lagMs();
      this.set(lag === null ? 0 : lag / 1000);
    },
  });
  /** The data paths' status() summaries, as /status shows them (read at scrape time). */
  const replication = () => (agent.status().replication ?? {}) as Record<string, Record<string, unknown>>;
  // What a data path still has to do to catch up, one metric per unit (absent while a path does not say).
  const behind = (name: string, unit: string, pathName: string, pick: (rep: Record<string, Record<string, unknown>>) => unknown) =>
    new Gauge({
      name,
      help: `${unit} the ${pathName} data path still has to send to the standby (or, on the standby, to fetch) to catch up`,
      labelNames: ['path'],
      registers: [registry],
      collect() {
        this.reset();
        const v = pick(replication());
        if (typeof v === 'number') this.set({ path: pathName }, v);
      },
    });
  behind('nimbus_ha_data_behind_bytes', 'bytes of WAL', 'db', (rep) => rep.db?.lag_bytes);
  behind('nimbus_ha_data_behind_objects', 'objects', 'repo', (rep) => rep.repo?.objectsBehind);
  behind('nimbus_ha_data_behind_files', 'files', 'files', (rep) => rep.files?.filesBehind);
  new Counter({
    name: 'nimbus_ha_repo_passes_total',
    help: 'repository sync passes on this node: listed (full listing of both sides) or skipped (the primary\'s change hint showed no change)',
    labelNames: ['result'],
    registers: [registry],
    collect() {
      this.reset();
      const repo = replication().repo;
      if (!repo) return;
      if (typeof repo.passes === 'number') this.inc({ result: 'listed' }, repo.passes);
      if (typeof repo.passesSkipped === 'number') this.inc({ result: 'skipped' }, repo.passesSkipped);
    },
  });
  new Gauge({
    name: 'nimbus_ha_repo_change_hint_ok',
    help: 'repository change hint usable: side="local" for this node\'s own watcher (primary), side="peer" for the hint received from the primary (standby); absent when not configured',
    labelNames: ['side'],
    registers: [registry],
    collect() {
      this.reset();
      const repo = replication().repo;
      if (!repo) return;
      const local = repo.changeHint as { ok?: boolean } | null | undefined;
      if (local) this.set({ side: 'local' }, local.ok ? 1 : 0);
      const peer = (repo.hint as { source?: { ok?: boolean } | null } | undefined)?.source;
      this.set({ side: 'peer' }, peer?.ok ? 1 : 0);
    },
  });
  const failovers = new Counter({ name: 'nimbus_ha_failovers_total', help: 'promotions of this node by kind (failover, switchover, failback; promoted: start-up and recovery)', labelNames: ['kind'], registers: [registry] });
  const fences = new Counter({ name: 'nimbus_ha_fenced_total', help: 'times this node fenced itself', registers: [registry] });
  const events = new Counter({ name: 'nimbus_ha_events_total', help: 'events recorded by type (role and epoch events exported from start, at 0 until the first)', labelNames: ['type'], registers: [registry] });
  // Every known series exists from the start, at 0: increase() over a counter that appears at 1 is 0,
  // so the first failover of each kind after every restart would never alert.
  for (const kind of PROMOTION_KINDS) failovers.inc({ kind }, 0);
  for (const type of IMPORTANT_EVENT_TYPES) events.inc({ type }, 0);
  fences.inc(0);
  const cycle = new Histogram({
    name: 'nimbus_ha_decision_cycle_seconds',
    help: 'duration of the last decision cycles',
    buckets: [0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5],
    registers: [registry],
  });
  let lastCycles = 0;
  new Counter({
    name: 'nimbus_ha_decision_cycles_total',
    help: 'decision cycles run since start',
    registers: [registry],
    collect() {
      if (agent.stats.cycles !== lastCycles) {
        cycle.observe(agent.stats.lastCycleMs / 1000);
        lastCycles = agent.stats.cycles;
      }
      this.reset();
      this.inc(agent.stats.cycles);
    },
  });
  bus.on((e) => {
    events.inc({ type: e.type });
    if ((PROMOTION_KINDS as readonly string[]).includes(e.type)) failovers.inc({ kind: e.type });
    if (e.type === 'fenced') fences.inc();
  });
  for (const ext of extensions) ext(registry);
  return registry;
}
