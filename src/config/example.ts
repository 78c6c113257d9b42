/** A commented, valid example config (`nimbus-ha config example`). Kept in step by a unit test. */
export const EXAMPLE_CONFIG = `# nimbus-ha node configuration (one file per node).
# Every key is documented in docs/configuration.md. \${VAR} and \${VAR:-default} read the environment;
# NHA_SECRET, NHA_DATA_SECRET and NHA_ADMIN_TOKEN override secret, dataSecret and adminToken. There are
# no default secrets: export all three (different values, e.g. from \`openssl rand -base64 32\`) or use
# secretFile / dataSecretFile / adminTokenFile (mode 0600, owned by the user running nimbus-ha).
# docs/security.md says how to rotate them.

# This node's name, as its peer and the witness know it.
node: a
# HTTP API: health (/health, /primary, /standby), /status, /metrics, /events, /admin/*, /peer/*.
listen: { host: 127.0.0.1, port: 8701 }
# Lease key: HMAC secret of heartbeats, votes and witness calls (the nodes and the witness share it).
secret: \${NHA_SECRET}
# Data-path key: base backups, WAL, config-file writes between the two nodes; never on the witness.
# Required with a witness and without tls (docs/security.md, "Key separation").
dataSecret: \${NHA_DATA_SECRET}
# Bearer token for /admin/* (switchover, failback, maintenance); not the same value as secret.
adminToken: \${NHA_ADMIN_TOKEN}
# Epoch store, event history.
dataDir: /var/lib/nimbus-ha/a

# The other node; one URL per redundant network path. The peer is dead only when every path is silent.
# (A node without peers is refused unless quorum.allowSingleNode: true says it runs alone, without failover.)
peers:
  - node: b
    urls: [ "http://127.0.0.1:8702", "http://127.0.0.2:8702" ]
# Node that takes the role at bootstrap and is the target of fail-back.
preferredPrimary: a
# Third vote, so a primary cut off from its peer can tell whether it still has a majority.
witness: { url: "http://127.0.0.1:8790" }
# Or the third vote in an etcd cluster the site already runs, one prefix per cluster (docs/etcd.md):
# coordinator: { kind: etcd, endpoints: [ "http://10.0.9.1:2379", "http://10.0.9.2:2379", "http://10.0.9.3:2379" ], prefix: "/nimbus-ha/pair-1/" }

timings:
  # fast: a heartbeat per path every 100 ms, peer dead after 500 ms of silence on every path, a primary
  # that cannot renew its 700 ms lease with a majority fences itself; failover in under a second;
  # services probed every 2 s. frugal: 1000 / 3000 / 3500 ms, probes every 5 s; failover in about 3 s
  # for a third to a half of the idle CPU.
  profile: fast
  # heartbeatMs, deadAfterMs, leaseMs and probeMs set here override the profile one by one.

# Advertised address. Kinds: none, bind-proxy (user space), linux-ip (ip addr + gratuitous ARP), command.
vip:
  kind: bind-proxy
  listen: { host: 127.0.0.1, port: 8080 }   # bound only while this node is primary
  target: { host: 127.0.0.1, port: 8081 }   # the local service

# Fail back to preferredPrimary automatically after it has been healthy and caught up this long.
failback: { auto: false, holdDownMs: 300000 }

log: { level: info }
`;

/** Heading of docs/configuration.md (the table below it is generated from the schema). */
export const CONFIG_REFERENCE_INTRO = `# Configuration reference

One YAML file per node, validated at start and by \`nimbus-ha config check FILE\` (every problem is reported
at once as \`key: problem (expected …)\`; unknown keys are rejected). \`nimbus-ha config example\` prints a
commented, valid file. Strings may use \`\${VAR}\` and \`\${VAR:-default}\` to read the environment;
\`NHA_SECRET\`, \`NHA_DATA_SECRET\`, \`NHA_ADMIN_TOKEN\`, \`NHA_DB_PASSWORD\`, \`NHA_DB_REPL_PASSWORD\`, \`NHA_REPO_ACCESS_KEY_ID\` and
\`NHA_REPO_SECRET_ACCESS_KEY\` and \`NHA_ETCD_PASSWORD\` override the matching secrets so they need not be written in the file.

\`secret\` and \`adminToken\` have no defaults: each must be set (inline, by its variable, or by
\`secretFile\` / \`adminTokenFile\`, a file of mode 0600 owned by the user running nimbus-ha), random (at
least 24 characters, not a placeholder, enough entropy) and different from the other. \`dataSecret\`
(or \`dataSecretFile\`), the key of the data paths that the witness never holds, follows the same rules,
differs from both, and is required when a witness is configured without \`tls\` (docs/security.md).

Cross-field rules checked at start: \`timings.deadAfterMs\` > 2 × \`timings.heartbeatMs\`,
\`timings.leaseMs\` > \`timings.deadAfterMs\`, \`timings.requestTimeoutMs\` < \`timings.leaseMs\`, a two-node
cluster has a \`witness\` or a \`coordinator\` (not both) unless \`quorum.allowTwoNodeWithoutWitness\` is true, a node has a peer unless
\`quorum.allowSingleNode\` is true, \`adminToken\` differs from \`secret\`, \`preferredPrimary\` names a
node of the cluster, service names are unique. With \`coordinator.kind: etcd\` ([etcd.md](etcd.md)):
\`timings.requestTimeoutMs\` ≥ 100, https:// endpoints exactly when \`coordinator.tls\` is set, and a
password from one place; a \`leaseMs\` under a second is accepted, but etcd holds whole seconds, so a
takeover after a crash waits for etcd's lease TTL.

This table is generated from the schema (\`nimbus-ha config reference\`); a test keeps it in step.
`;
