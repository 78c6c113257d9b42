import { z } from 'zod';
import { linuxIpVipConfigSchema as linuxIpVipSchema } from './vip-linux-ip.js';
import { nimbusConfigSchema } from './nimbus.js';
import { keyListProblems, MIN_SECRET_LENGTH, secretProblem } from './secrets.js';
import type { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { parseCertificates, tlsFileProblems } from '../peer/tls.js';
import type { Keys } from '../peer/keyring.js';
import { filesConfigSchema } from '../replication/files/config.js';
import { nimbusStateConfigSchema } from '../replication/nimbus-state/config.js';
import { repoConfigSchema } from '../replication/repo/config.js';
import { dbConfigSchema } from '../replication/db/config.js';
import { notifyConfigSchema, policyFieldsSchema, probeSpecSchema } from '../monitor/config.js';

/** host:port pair. */
const hostPort = z
  .object({
    host: z.string().min(1).default('127.0.0.1').describe('address to bind or connect to'),
    port: z.number().int().min(0).max(65535).describe('TCP port'),
  })
  .strict();

const url = z.string().url();

/** A secret or token: refused when short, low in entropy or a placeholder (src/config/secrets.ts). */
const secretString = z.string().superRefine((v, ctx) => {
  const problem = secretProblem(v);
  if (problem) ctx.addIssue({ code: z.ZodIssueCode.custom, message: problem });
});

/**
 * The cluster secret, the data secret or the admin token: one random value, or a list of them while it
 * is rotated (the first signs; a message or token matching any is accepted: src/peer/keyring.ts). A
 * string is one key exactly as given, newlines included.
 */
const secretKeys = z
  .union([z.string(), z.array(z.string())], {
    errorMap: (issue, ctx) => ({ message: issue.code === 'invalid_union' ? `has the wrong type ${Array.isArray(ctx.data) ? 'list with a non-string entry' : typeof ctx.data} (expected a string, or a list of strings while rotating)` : ctx.defaultError }),
  })
  .superRefine((v, ctx) => {
    for (const message of keyListProblems(typeof v === 'string' ? [v] : v)) ctx.addIssue({ code: z.ZodIssueCode.custom, message });
  })
  .transform((v) => (typeof v === 'string' ? [v] : v) as unknown as Keys);

/**
 * `tls`: certificate, key and CA of this node (PEM files). The files are read and checked when the config
 * is: each problem names its key (`tls.cert`, `tls.key`, `tls.ca`).
 */
export const tlsSchema = z
  .object({
    cert: z.string().min(1).describe('PEM certificate of this node, issued by `ca`, with the node\'s name as subject CN and the hosts of its URLs as subject alternative names (`nimbus-ha certs init` makes one)'),
    key: z.string().min(1).describe('PEM private key of `cert` (unencrypted; owned by the user running nimbus-ha, mode 0600)'),
    ca: z.string().min(1).describe('PEM certificate(s) of the cluster CA: the only issuer trusted for peer and witness servers and for peer clients (two certificates while a CA is replaced)'),
  })
  .strict()
  .superRefine((t, ctx) => {
    for (const p of tlsFileProblems(t).problems) ctx.addIssue({ code: z.ZodIssueCode.custom, path: [p.field], message: p.problem });
  });

export const peerSchema = z
  .object({
    node: z.string().min(1).describe('name of the peer node, as it calls itself in its own config'),
    urls: z
      .array(url)
      .min(1)
      .describe('base URLs of the peer sidecar, one per redundant network path (heartbeats go over each)'),
    heartbeat: z
      .enum(['udp', 'http'])
      .default('udp')
      .describe('how heartbeats travel on each path: "udp" sends one signed datagram to the same host and port as the URL (cheapest), "http" a signed POST to the URL'),
  })
  .strict();

/**
 * Named timing profiles. `fast` (the default) fails over in well under a second and costs 1–2 % of a
 * core at idle on a head node; `frugal` beats once a second, fails over in about 3 s (as fast as
 * keepalived's and HA-OSCAR's defaults) and costs a third to a half as much; `lan` is for two head nodes
 * on one switch (sub-millisecond round trips, no congested links between them): it beats every 20 ms and
 * fails over in about 150-200 ms, for several times the idle CPU of `fast`. The profile also sets the
 * default probe period of the protected services and the timeout of one heartbeat or vote request, which
 * must stay below the lease. docs/benchmarks.md has the measurements behind all three.
 */
export const TIMING_PROFILES = {
  fast: { heartbeatMs: 100, deadAfterMs: 500, leaseMs: 700, probeMs: 2000, requestTimeoutMs: 400 },
  frugal: { heartbeatMs: 1000, deadAfterMs: 3000, leaseMs: 3500, probeMs: 5000, requestTimeoutMs: 400 },
  lan: { heartbeatMs: 20, deadAfterMs: 100, leaseMs: 140, probeMs: 2000, requestTimeoutMs: 80 },
} as const;
export type TimingProfile = keyof typeof TIMING_PROFILES;

const fromProfile = (field: keyof (typeof TIMING_PROFILES)['fast']) =>
  `default from timings.profile: ${Object.entries(TIMING_PROFILES)
    .map(([name, p]) => `${p[field]} (${name})`)
    .join(', ')}`;

export const timingsSchema = z
  .object({
    profile: z
      .enum(Object.keys(TIMING_PROFILES) as [TimingProfile, ...TimingProfile[]])
      .default('fast')
      .describe(
        'named defaults for heartbeatMs, deadAfterMs, leaseMs, probeMs and requestTimeoutMs: "fast" (100 / 500 / 700 / 2000 / 400 ms, failover under 1 s), "frugal" (1000 / 3000 / 3500 / 5000 / 400 ms, failover in about 3 s, a third to a half of the idle CPU of "fast") or "lan" (20 / 100 / 140 / 2000 / 80 ms, failover in about 200 ms, for two nodes on one switch; several times the idle CPU of "fast"); a field set explicitly wins',
      ),
    heartbeatMs: z.number().int().min(10).optional().describe(`interval between heartbeats on each path; ${fromProfile('heartbeatMs')}`),
    deadAfterMs: z
      .number()
      .int()
      .min(30)
      .optional()
      .describe(`the peer is dead when every path has been silent this long; ${fromProfile('deadAfterMs')}`),
    leaseMs: z
      .number()
      .int()
      .min(50)
      .optional()
      .describe(`primary lease; a primary that cannot renew it with a majority fences itself; ${fromProfile('leaseMs')}`),
    probeMs: z
      .number()
      .int()
      .min(10)
      .optional()
      .describe(`probe period of a protected service (services[].intervalMs, nimbus.monitor.intervalMs) that sets none; ${fromProfile('probeMs')}`),
    requestTimeoutMs: z.number().int().min(10).optional().describe(`timeout of one heartbeat or vote request (less than leaseMs); ${fromProfile('requestTimeoutMs')}`),
    handoverTimeoutMs: z
      .number()
      .int()
      .min(100)
      .default(30_000)
      .describe('how long the successor may take to become primary once a graceful handover offered it the role (the data paths bound their own waits before the offer); then the handover is abandoned and the cluster elects again'),
    handoverDrainMs: z
      .number()
      .int()
      .min(0)
      .max(60_000)
      .default(0)
      .describe(
        'switchover and fail-back: how long the old primary answers 503 on /primary while it still serves, before its data paths hand over, so a load balancer marks it down first (set it above the balancer\'s time to mark a server down: HAProxy inter + (fall - 1) × fastinter + timeout check); 0: hand over at once (VIP-only setups)',
      ),
    plannedHoldDownMs: z
      .number()
      .int()
      .min(0)
      .default(10_000)
      .describe('after a switchover or fail-back, the new primary refuses further ones (409) for this long, so a burst of requests moves the role once; 0: no hold-down'),
  })
  .strict()
  .transform(({ profile, ...t }) => {
    const p = TIMING_PROFILES[profile];
    return {
      ...t,
      profile,
      heartbeatMs: t.heartbeatMs ?? p.heartbeatMs,
      deadAfterMs: t.deadAfterMs ?? p.deadAfterMs,
      leaseMs: t.leaseMs ?? p.leaseMs,
      probeMs: t.probeMs ?? p.probeMs,
      // A lease set at or below the profile's request timeout brings the timeout down with it (it must stay below the lease).
      requestTimeoutMs: t.requestTimeoutMs ?? (p.requestTimeoutMs < (t.leaseMs ?? p.leaseMs) ? p.requestTimeoutMs : Math.max(10, Math.floor((t.leaseMs ?? p.leaseMs) * 0.6))),
    };
  });

const noVip = z.object({ kind: z.literal('none') }).strict();

export const bindProxyVipSchema = z
  .object({
    kind: z.literal('bind-proxy'),
    listen: hostPort.describe('the advertised address, bound only while this node is primary'),
    target: hostPort.describe('the local service the advertised address forwards to'),
  })
  .strict();

export const commandVipSchema = z
  .object({
    kind: z.literal('command'),
    acquire: z.string().min(1).describe('shell command run to take the address (NHA_ROLE, NHA_EPOCH, NHA_NODE set)'),
    release: z.string().min(1).describe('shell command run to give the address up'),
    check: z.string().optional().describe('shell command exiting 0 while this node holds the address'),
    timeoutMs: z.number().int().min(100).default(10_000).describe('timeout of each command'),
  })
  .strict();

export { linuxIpVipConfigSchema as linuxIpVipSchema } from './vip-linux-ip.js';

export const vipSchema = z
  .discriminatedUnion('kind', [noVip, bindProxyVipSchema, commandVipSchema, linuxIpVipSchema])
  .default({ kind: 'none' });

/** How a protected service is started and stopped. */
export const serviceControlSchema = z
  .discriminatedUnion('kind', [
    z
      .object({
        kind: z.literal('command'),
        start: z.string().min(1).describe('shell command that starts the service (may daemonize)'),
        stop: z.string().min(1).describe('shell command that stops the service'),
        timeoutMs: z.number().int().min(100).default(30_000).describe('timeout of start and stop'),
      })
      .strict(),
    z
      .object({
        kind: z.literal('process'),
        command: z.array(z.string().min(1)).min(1).describe('argv of a foreground service (no shell)'),
        cwd: z.string().optional().describe('working directory'),
        env: z.record(z.string()).default({}).describe('extra environment'),
        logFile: z.string().optional().describe('file that receives the service output'),
        pidFile: z.string().optional().describe('PID file, so a restarted sidecar can still stop the service'),
        stopTimeoutMs: z.number().int().min(100).default(10_000).describe('time between SIGTERM and SIGKILL'),
        startGraceMs: z.number().int().min(0).default(300).describe('an exit within this time is a failed start'),
      })
      .strict(),
    z.object({ kind: z.literal('none') }).strict(),
  ])
  .default({ kind: 'none' });

/** A protected service: how to control it, how to probe it, its restart policy. */
export const serviceSchema = policyFieldsSchema
  .extend({
    name: z.string().regex(/^[A-Za-z0-9_.-]+$/, 'letters, digits, ".", "-" and "_" only').describe('service name in status, events and metrics'),
    control: serviceControlSchema.describe('how the service is started and stopped (none: probe only)'),
    probe: probeSpecSchema,
    intervalMs: z
      .number()
      .int()
      .min(10)
      .optional()
      .describe('probe period (default timings.probeMs: 2000 ms with the fast profile, 5000 ms with frugal): probes start on the grid points of this period that the node\'s other timers share (one wake-up), at least half a period after the previous probe ended'),
    timeoutMs: z.number().int().min(10).default(2_000).describe('a probe that takes longer counts as failed'),
    runOn: z
      .enum(['primary', 'all'])
      .default('all')
      .describe('"primary": started on promotion and stopped on demotion; "all": runs on both nodes'),
  })
  .strict();

/**
 * `coordinator: { kind: etcd }`: the third vote and the data-holder record in an etcd cluster the site
 * already runs, instead of a `nimbus-ha witness` (docs/etcd.md). The PEM files and the password file are
 * read when the node starts.
 */
export const etcdCoordinatorSchema = z
  .object({
    kind: z.literal('etcd'),
    endpoints: z
      .array(z.string().regex(/^https?:\/\/[^/\s]+$/, 'expected http://HOST:PORT or https://HOST:PORT (an etcd client URL, no path)'))
      .min(1)
      .describe('client URLs of the etcd members (http://HOST:2379, or https:// with `tls`); list every member so a dead one is skipped'),
    prefix: z
      .string()
      .regex(/^\/(?:[A-Za-z0-9_.-]+\/)+$/, 'expected a key prefix like "/nimbus-ha/CLUSTER/": starting and ending with "/", letters, digits, ".", "-" and "_" between')
      .describe('key prefix of this cluster, the same on both nodes and different for every cluster sharing the etcd (e.g. "/nimbus-ha/prod-a/"): the keys are <prefix>epoch, <prefix>lease and <prefix>holders'),
    tls: z
      .object({
        ca: z.string().min(1).describe('PEM certificate(s) of the CA that issued the etcd servers\' certificates'),
        cert: z.string().min(1).optional().describe('PEM client certificate, when etcd asks for one (--client-cert-auth)'),
        key: z.string().min(1).optional().describe('PEM private key of `cert` (mode 0600)'),
      })
      .strict()
      .optional()
      .describe('TLS toward etcd (the endpoints must then be https://)'),
    auth: z
      .object({
        user: z.string().min(1).describe('etcd user (needs read and write on the prefix: etcdctl role grant-permission --prefix=true ROLE readwrite PREFIX)'),
        password: z.string().min(1).optional().describe('its password (env NHA_ETCD_PASSWORD overrides; or passwordFile)'),
        passwordFile: z.string().min(1).optional().describe('file holding the password instead of `password` (owned by the user running nimbus-ha, mode 0600)'),
      })
      .strict()
      .optional()
      .describe('etcd password authentication (never passed to child processes)'),
  })
  .strict();

export type EtcdCoordinatorConfig = z.output<typeof etcdCoordinatorSchema>;

export const clusterConfigSchema = z
  .object({
    node: z.string().regex(/^[a-zA-Z0-9_.-]+$/, 'letters, digits, "_", "-" and "." only').describe('this node\'s name'),
    listen: hostPort.describe('address of the HTTP API (health, status, admin, peer)'),
    secret: secretKeys.describe(
      `shared HMAC secret of the cluster: random, at least ${MIN_SECRET_LENGTH} characters, not a placeholder, not the adminToken (env NHA_SECRET overrides; or secretFile). While rotating, a list (YAML list, or secretFile as a list of files): the first signs, any is accepted (docs/operations.md, "Rotating secrets and certificates")`,
    ),
    secretFile: z
      .union([z.string(), z.array(z.string())])
      .optional()
      .describe('file holding the secret instead of `secret` (owned by the user running nimbus-ha, mode 0600; the whole file is one key, less one trailing newline); a list of files while rotating, the first signing'),
    dataSecret: secretKeys
      .optional()
      .describe(
        `HMAC key of the data paths (base backups, WAL, config-file and Nimbus-state writes, repository hints), shared by the two nodes and never given to the witness, which holds only \`secret\` (the lease key): random, at least ${MIN_SECRET_LENGTH} characters, different from secret and adminToken (env NHA_DATA_SECRET overrides; or dataSecretFile; a list while rotating, as for secret). Required when a witness is configured without tls; otherwise, when unset, \`secret\` signs the data paths too (docs/security.md, "Key separation")`,
      ),
    dataSecretFile: z
      .union([z.string(), z.array(z.string())])
      .optional()
      .describe('file holding the dataSecret instead of `dataSecret` (owned by the user running nimbus-ha, mode 0600; the whole file is one key, less one trailing newline); a list of files while rotating, the first signing'),
    adminToken: secretKeys.describe(
      `bearer token for /admin/*: random, at least ${MIN_SECRET_LENGTH} characters, not the secret (env NHA_ADMIN_TOKEN overrides; or adminTokenFile). While rotating, a list (or a list of files): any of them is accepted`,
    ),
    adminTokenFile: z
      .union([z.string(), z.array(z.string())])
      .optional()
      .describe('file holding the adminToken instead of `adminToken` (owned by the user running nimbus-ha, mode 0600; the whole file is one key, less one trailing newline); a list of files while rotating, the first signing'),
    tls: tlsSchema
      .optional()
      .describe(
        'TLS for the node API and toward the peer and the witness: the API serves https, peer and witness requests need a client certificate issued by `ca` naming the signing node, and peer and witness URLs must be https:// (docs/security.md); without it everything is plain HTTP (authenticated, not encrypted)',
      ),
    dataDir: z.string().min(1).describe('directory for the epoch store and history'),
    peers: z.array(peerSchema).max(1, 'one peer: nimbus-ha runs active/standby pairs').default([]),
    preferredPrimary: z
      .string()
      .optional()
      .describe('node that takes the primary role at bootstrap and is the target of fail-back'),
    witness: z
      .object({
        url: url.describe('base URL of the `nimbus-ha witness` process'),
        transport: z
          .enum(['udp', 'http'])
          .default('udp')
          .describe('how lease calls travel: "udp" signed datagrams to the same host and port as the URL, "http" signed POSTs'),
      })
      .strict()
      .optional()
      .describe('third vote of a two-node cluster: a `nimbus-ha witness` process (or `coordinator` for etcd)'),
    coordinator: z
      .discriminatedUnion('kind', [etcdCoordinatorSchema])
      .optional()
      .describe('the third vote and the data-holder record in an existing etcd cluster instead of `witness` (docs/etcd.md); one of the two'),
    quorum: z
      .object({
        allowTwoNodeWithoutWitness: z
          .boolean()
          .default(false)
          .describe('run a two-node cluster without a witness: the standby promotes on peer silence alone (split-brain risk on partitions)'),
        allowSingleNode: z
          .boolean()
          .default(false)
          .describe('run one node without a peer (no standby: nothing takes over when it fails); without it `peers` must name the other node'),
      })
      .strict()
      .default({}),
    timings: timingsSchema.default({}),
    vip: vipSchema,
    vips: z
      .array(z.discriminatedUnion('kind', [bindProxyVipSchema, commandVipSchema, linuxIpVipSchema]))
      .default([])
      .describe('further advertised addresses taken and released together with `vip` (e.g. API, repository and database)'),
    services: z.array(serviceSchema).default([]).describe('protected services: control, probe, restart policy'),
    notify: notifyConfigSchema,
    nimbus: nimbusConfigSchema
      .optional()
      .describe('the Nimbus head node (VM service): controlled and probed as a service that runs on the primary'),
    db: dbConfigSchema.optional().describe('the local PostgreSQL under HA control (log shipping to the standby)'),
    repo: repoConfigSchema.optional().describe('image repository (Cumulus / S3) replicated to the standby'),
    files: filesConfigSchema.optional().describe('config-file trees replicated from the primary to the standby'),
    nimbusState: nimbusStateConfigSchema
      .optional()
      .describe('a real Nimbus head node\'s own state: Derby databases (frozen point-in-time copies) and Cumulus\'s authz.db with posixdata, verified on the standby (docs/nimbus.md)'),
    history: z
      .object({
        file: z.string().optional().describe('JSON-lines event history (default <dataDir>/events.jsonl)'),
        keep: z.number().int().min(10).default(500).describe('events kept in memory for /events'),
        maxBytes: z.number().int().min(0).default(64 * 1024 * 1024).describe('the history file is rotated when it would grow past this many bytes (0: never); /events and `nimbus-ha status` read the rotated files too'),
        files: z.number().int().min(0).max(100).default(5).describe('rotated history files kept (<file>.1 newest … <file>.N oldest); older ones are removed'),
      })
      .strict()
      .default({}),
    disk: z
      .object({
        warnPercent: z.number().min(1).max(100).default(80).describe('a volume the sidecar writes (data, database, WAL archive, quarantine, history) used to this percent raises a disk.warning event'),
        criticalPercent: z.number().min(1).max(100).default(90).describe('used to this percent: a disk.critical event'),
        intervalMs: z.number().int().min(1000).default(60_000).describe('how often the volumes are measured besides each /metrics scrape'),
      })
      .strict()
      .default({})
      .describe('disk watermarks: free bytes and percent of each volume as metrics (nimbus_ha_disk_free_bytes, nimbus_ha_disk_free_percent) and events'),
    failback: z
      .object({
        auto: z.boolean().default(false).describe('fail back to preferredPrimary automatically once caught up'),
        holdDownMs: z.number().int().min(0).default(300_000).describe('how long the preferred node must be healthy and caught up first'),
      })
      .strict()
      .default({}),
    log: z
      .object({ level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info') })
      .strict()
      .default({}),
  })
  .strict();

export type ClusterConfigInput = z.input<typeof clusterConfigSchema>;
export type ClusterConfig = z.output<typeof clusterConfigSchema>;
export type VipConfig = z.output<typeof vipSchema>;
export type Timings = z.output<typeof timingsSchema>;
export type ServiceConfig = z.output<typeof serviceSchema>;

/**
 * With `tls`, every peer and witness URL must be https:// (the client refuses anything else); without
 * it an https:// URL cannot work (the peer would ask for a client certificate this node does not have).
 * To be called with the other cross-field checks (src/config/checks.ts).
 */
export function tlsCrossChecks(cfg: ClusterConfig): { key: string; problem: string }[] {
  const out: { key: string; problem: string }[] = [];
  const check = (key: string, u: string) => {
    const https = u.startsWith('https:');
    if (cfg.tls && !https) out.push({ key, problem: `is ${u} but tls is configured (expected an https:// URL: nothing is sent in clear text)` });
    if (!cfg.tls && https) out.push({ key, problem: `is ${u} but tls is not configured (expected tls: { cert, key, ca } on this node, or an http:// URL)` });
  };
  cfg.peers.forEach((p, i) => p.urls.forEach((u, j) => check(`peers.${i}.urls.${j}`, u)));
  if (cfg.witness) check('witness.url', cfg.witness.url);
  // The peer's standby connects to db.advertiseHost with sslmode=verify-full: the certificate must name it.
  if (cfg.tls && cfg.db) {
    const host = cfg.db.advertiseHost;
    const cert = certificateOf(cfg.tls.cert);
    if (cert && !(isIP(host) ? cert.checkIP(host) : cert.checkHost(host))) {
      out.push({
        key: 'db.advertiseHost',
        problem: `is ${host}, which ${cfg.tls.cert} does not name (expected a host in its subject alternative names: the peer's standby verifies it, sslmode=verify-full; issue the certificate with --san ${cfg.node}=${host})`,
      });
    }
  }
  return out;
}

function certificateOf(file: string): X509Certificate | null {
  try {
    return parseCertificates(readFileSync(file, 'utf8'))[0] ?? null;
  } catch {
    return null; // reported by the tls block's own checks
  }
}
