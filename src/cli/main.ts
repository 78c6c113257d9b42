#!/usr/bin/env -S MALLOC_ARENA_MAX=2 MALLOC_MMAP_THRESHOLD_=65536 node --max-semi-space-size=2
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { packageVersion } from '../peer/protocol.js';
import { Command, Option } from 'commander';
import { HaError, errorMessage } from '../errors.js';
import { apiRequest } from './http.js';
import { registerLazyCommands } from './lazy-commands.js';
import { listenError, parseListen } from './listen.js';

// Each command imports what it uses when it runs (the config schema and its validators, the S3 SDK,
// the demo fixtures), so `--help` and `status` start without them.
async function loadClusterConfig(file: string) {
  const [{ loadConfigFile }, { clusterConfigSchema }, { clusterCrossChecks }] = await Promise.all([import('../config/load.js'), import('../config/schema.js'), import('../config/checks.js')]);
  return loadConfigFile(file, clusterConfigSchema, { crossChecks: [clusterCrossChecks] });
}

// Under Node 20 the AWS SDK warns on every start that its releases after January 2027 need Node 22.
// package-lock.json pins the SDK, so there is nothing for an operator to act on; set
// AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED=false to see it. Child processes inherit the setting.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

const program = new Command();
program.name('nimbus-ha').description('High-availability sidecar for IaaS head nodes').showHelpAfterError();

program.version(packageVersion('0.0.0'));

const urlOption = () => new Option('--url <url>', 'API of a nimbus-ha node').env('NHA_URL').default('http://127.0.0.1:8701');
const tokenOption = () => new Option('--token <token>', 'admin bearer token').env('NHA_ADMIN_TOKEN');

program
  .command('run')
  .description('run the sidecar for one node')
  .requiredOption('-c, --config <file>', 'node config file (YAML)')
  .action(async (opts: { config: string }) => {
    const cfg = await loadClusterConfig(opts.config);
    const { scrubOwnEnv } = await import('../util/child-env.js');
    // The credentials are in the config now; libraries that start processes themselves must not pass them on.
    scrubOwnEnv();
    const { startNode } = await import('./node.js');
    const node = await startNode(cfg);
    let stopping = false;
    const shutdown = async (sig: string) => {
      if (stopping) return;
      stopping = true;
      node.bus.emit({ type: 'agent_stopping', severity: 'info', message: `stopping on ${sig}` });
      await node.stop();
      process.exit(0);
    };
    process.on('SIGTERM', () => void shutdown('SIGTERM'));
    process.on('SIGINT', () => void shutdown('SIGINT'));
  });

program
  .command('key-id')
  .description('print the key id of a secret or token read from standard input or --file (what GET /admin/keys and the witness log show; the key is never taken from the command line)')
  .option('--file <file>', 'file holding the key (mode 0600), instead of standard input')
  .action(async (opts: { file?: string }) => {
    const { readFileSync } = await import('node:fs');
    const { keyId } = await import('../peer/keyring.js');
    // As a secret file is read: the whole content, less one trailing newline.
    const raw = readFileSync(opts.file ?? 0, 'utf8').replace(/\r?\n$/, '');
    if (!raw) throw new HaError('USAGE', 'no key on standard input (expected the key, e.g. nimbus-ha key-id < /etc/nimbus-ha/secret)');
    console.log(keyId(raw));
  });

program
  .command('witness')
  .description('run the witness: the third vote of a two-node cluster (key from NHA_SECRET or --secret-file, never the command line)')
  .option('--listen <host:port>', 'address to listen on', '127.0.0.1:8790')
  .requiredOption('--data-dir <dir>', 'where the witness persists its epoch and lease holder')
  .option('--secret-file <file>', 'file holding the cluster secret (mode 0600, owned by this user); given again for each key while the secret is rotated, the first signing; default: env NHA_SECRET', (v: string, prev: string[] = []) => [...prev, v])
  .option('--max-lease-ms <ms>', 'upper bound of any lease', '10000')
  .option('--tls-cert <file>', 'PEM certificate of the witness (with --tls-key and --tls-ca: serve https, lease calls only from clients with a certificate the CA issued)')
  .option('--tls-key <file>', 'PEM private key of --tls-cert (mode 0600, owned by this user)')
  .option('--tls-ca <file>', 'PEM certificate of the cluster CA')
  .action(async (opts: { listen: string; dataDir: string; secretFile?: string[]; maxLeaseMs: string; tlsCert?: string; tlsKey?: string; tlsCa?: string }) => {
    parseListen('--listen', opts.listen);
    const { witnessSecret, witnessTls } = await import('./witness.js');
    const secret = witnessSecret(opts.secretFile ?? [], process.env.NHA_SECRET);
    // Children of the witness (none today) must not see the key either.
    delete process.env.NHA_SECRET;
    const tls = witnessTls(opts);
    const { runWitness } = await import('./witness.js');
    try {
      await runWitness({ listen: opts.listen, file: join(opts.dataDir, 'witness.json'), secret, maxLeaseMs: Number(opts.maxLeaseMs), tls });
    } catch (err) {
      throw listenError('--listen', opts.listen, err);
    }
  });

program
  .command('status')
  .description('show the state of a node (role, epoch, lease, peers and paths, services, replication)')
  .addOption(urlOption())
  .option('--json', 'print the raw /status JSON')
  .action(async (opts: { url: string; json?: boolean }) => {
    const { data } = await apiRequest<Record<string, unknown>>('GET', opts.url, '/status');
    if (opts.json) {
      console.log(JSON.stringify(data, null, 2));
      return;
    }
    const ev = await apiRequest<{ events: Record<string, any>[] }>('GET', opts.url, '/events?type=failover,switchover,failback,fenced,demoted&limit=5');
    const { formatStatus } = await import('./status-format.js');
    console.log(formatStatus(data, ev.data.events ?? []));
  });

async function waitRequest(url: string, token: string | undefined, id: string, timeoutMs: number): Promise<{ state: string; message: string }> {
  const until = Date.now() + timeoutMs;
  let last = { state: 'pending', message: '' };
  while (Date.now() < until) {
    const { status, data } = await apiRequest<{ state: string; message: string }>('GET', url, `/admin/requests/${id}`, { token });
    if (status === 200) last = data;
    if (last.state === 'done' || last.state === 'refused') return last;
    await new Promise((r) => setTimeout(r, 200));
  }
  return last;
}

async function adminAction(kind: 'switchover' | 'failback', opts: { url: string; token?: string; to?: string; wait: string }) {
  const { status, data } = await apiRequest<{ id: string; message: string; error?: string }>('POST', opts.url, `/admin/${kind}`, { token: opts.token, body: kind === 'switchover' ? { to: opts.to } : {} });
  if (status === 409) {
    // Refused at once (a planned move already queued or running, or the hold-down after the last one).
    console.log(`${kind}: refused: ${data.message}`);
    process.exitCode = 1;
    return;
  }
  if (status !== 202) throw new HaError('USAGE', `${kind} not accepted (HTTP ${status}): ${data.message ?? JSON.stringify(data)}`);
  const r = await waitRequest(opts.url, opts.token, data.id, Number(opts.wait));
  console.log(`${kind}: ${r.state}: ${r.message}`);
  if (r.state === 'refused') process.exitCode = 1;
}

program
  .command('switchover')
  .description('planned handover of the primary role to the standby (zero data loss)')
  .addOption(urlOption())
  .addOption(tokenOption())
  .option('--to <node>', 'target node (default: the peer)')
  .option('--wait <ms>', 'how long to wait for the outcome', '60000')
  .action((opts) => adminAction('switchover', opts));

program
  .command('failback')
  .description('return the primary role to the preferred node once it is fully caught up')
  .addOption(urlOption())
  .addOption(tokenOption())
  .option('--wait <ms>', 'how long to wait for the outcome', '120000')
  .action((opts) => adminAction('failback', opts));

program
  .command('promote')
  .description('promote this node although the data-holder record does not name it (loses the writes it lacks)')
  .addOption(urlOption())
  .addOption(tokenOption())
  .option('--accept-data-loss', 'required: writes acknowledged by the recorded holders and missing here are lost')
  .option('--wait <ms>', 'how long to wait for the outcome', '30000')
  .action(async (opts: { url: string; token?: string; acceptDataLoss?: boolean; wait: string }) => {
    if (!opts.acceptDataLoss) {
      throw new HaError('USAGE', 'promote needs --accept-data-loss: the node may lack writes the data-holder record says only its peer has; prefer bringing that peer back');
    }
    const { status, data } = await apiRequest<{ id: string; message: string }>('POST', opts.url, '/admin/promote', { token: opts.token, body: { acceptDataLoss: true } });
    if (status !== 202) throw new HaError('USAGE', `promote not accepted (HTTP ${status}): ${data.message ?? JSON.stringify(data)}`);
    const r = await waitRequest(opts.url, opts.token, data.id, Number(opts.wait));
    console.log(`promote: ${r.state}: ${r.message}`);
    if (r.state === 'refused') process.exitCode = 1;
  });

program
  .command('maintenance')
  .description('pause (on) or resume (off) automatic promotion, handover and restarts on both nodes, or with --node on that node alone')
  .argument('<state>', 'on or off')
  .addOption(urlOption())
  .addOption(tokenOption())
  .option('--node <name>', 'this node alone (the node --url reaches, which must be NAME); its peer keeps running automation')
  .action(async (state: string, opts: { url: string; token?: string; node?: string }) => {
    if (state !== 'on' && state !== 'off') throw new HaError('USAGE', 'maintenance takes "on" or "off"');
    const body = { on: state === 'on', ...(opts.node !== undefined ? { node: opts.node } : {}) };
    const { status, data } = await apiRequest<{ message: string }>('POST', opts.url, '/admin/maintenance', { token: opts.token, body });
    if (status !== 200) throw new HaError('USAGE', `maintenance not accepted (HTTP ${status}): ${JSON.stringify(data)}`);
    console.log(data.message);
  });

program
  .command('vip')
  .description('operate the configured VIP by hand (e.g. ExecStopPost=nimbus-ha vip release)')
  .argument('<action>', 'release | status')
  .requiredOption('-c, --config <file>', 'node config file (YAML)')
  .action(async (action: string, opts: { config: string }) => {
    const cfg = await loadClusterConfig(opts.config);
    const { makeVips } = await import('./node.js');
    const vip = makeVips(cfg);
    if (!vip) {
      console.log('no VIP configured (vip.kind: none)');
      return;
    }
    if (action === 'release') {
      await vip.release({ node: cfg.node, epoch: 0, role: 'standby', reason: 'released by hand' });
      console.log(`released ${vip.describe()}`);
    } else if (action === 'status') {
      console.log(`${vip.describe()}: ${(await vip.held()) ? 'held by this node' : 'not held by this node'}`);
    } else {
      throw new HaError('USAGE', 'vip takes "release" or "status"');
    }
    await vip.close();
  });

const config = program.command('config').description('check or print configuration');
config
  .command('check')
  .argument('<file>', 'node config file')
  .description('validate a config file; exit 1 with every problem as `key: problem (expected …)`')
  .action(async (file: string) => {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      throw new HaError('CONFIG_NOT_FOUND', `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? errorMessage(err)}`);
    }
    const [{ formatProblems, parseConfigText }, { clusterConfigSchema }, { clusterCrossChecks }, { nimbusStateWarnings }] = await Promise.all([
      import('../config/load.js'),
      import('../config/schema.js'),
      import('../config/checks.js'),
      import('../replication/nimbus-state/coverage.js'),
    ]);
    const r = parseConfigText(text, clusterConfigSchema, { crossChecks: [clusterCrossChecks] });
    if (!r.config) {
      console.error(`${file}: ${r.problems.length} problem(s)\n${formatProblems(r.problems)}`);
      process.exitCode = 1;
      return;
    }
    console.log(`${file}: ok (node ${r.config.node}, ${r.config.peers.length} peer(s), witness ${r.config.witness ? 'yes' : 'no'}, vip ${r.config.vip.kind})`);
    for (const w of nimbusStateWarnings(r.config)) console.log(`warning: ${w}`);
  });
config
  .command('from-nimbus')
  .argument('<home>', 'NIMBUS_HOME of a real Nimbus install')
  .description('print commented config sections covering every durable item of a Nimbus head node (Derby, authz.db, posixdata, config trees) with probes on its ports')
  .action(async (home: string) => {
    const { fromNimbus } = await import('../../adapters/nimbus/from-nimbus.js');
    process.stdout.write(fromNimbus(home));
  });
config
  .command('reference')
  .description('print the configuration reference (Markdown; docs/configuration.md is this output)')
  .action(async () => {
    const [{ configReferenceMarkdown }, { clusterConfigSchema }, { CONFIG_REFERENCE_INTRO }] = await Promise.all([import('../config/reference.js'), import('../config/schema.js'), import('../config/example.js')]);
    process.stdout.write(configReferenceMarkdown(clusterConfigSchema, CONFIG_REFERENCE_INTRO));
  });
config
  .command('example')
  .description('print a commented, valid example config')
  .action(async () => {
    const { EXAMPLE_CONFIG } = await import('../config/example.js');
    process.stdout.write(EXAMPLE_CONFIG);
  });

program
  .command('demo')
  .description('head-node pair on loopback (embedded PostgreSQL, Cumulus, VM service): kill -9 node a, measure, fail back, verify')
  .option('--once', 'run the scenario once and exit (default: leave the stack up until Ctrl-C)')
  .option('--json', 'print one JSON report instead of the step-by-step text')
  .option('--dir <dir>', 'working directory for the demo (default: a temp dir)')
  .option('--basic', 'the cluster core only: two sidecars fronting a small service (no database, repository, files)')
  .addOption(new Option('--db-mode <mode>', 'database replication mode').choices(['sync', 'async']).default('sync'))
  .addOption(
    new Option('--repo-mode <mode>', 'image repository mode: sync (uploads through the write-through front) or async (the standby pulls in passes)')
      .choices(['sync', 'async'])
      .default('sync'),
  )
  .action(async (opts: { once?: boolean; json?: boolean; dir?: string; basic?: boolean; dbMode: 'sync' | 'async'; repoMode: 'sync' | 'async' }) => {
    if (opts.basic) {
      const { runDemo } = await import('./demo.js');
      await runDemo(opts);
    } else {
      const { runHeadnodeDemo } = await import('./demo-headnode.js');
      await runHeadnodeDemo({ ...opts, sync: opts.dbMode, repoMode: opts.repoMode });
    }
  });

// Commands whose modules pull in large libraries: the one asked for is loaded, the others are listed.
await registerLazyCommands(program, process.argv);

program.parseAsync(process.argv).catch((err: unknown) => {
  if (err instanceof HaError) {
    console.error(`error: ${err.message}`);
    process.exitCode = err.code === 'USAGE' ? 2 : 1;
  } else {
    console.error(`error: ${errorMessage(err)}`);
    process.exitCode = 1;
  }
});
