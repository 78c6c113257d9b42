import pino from 'pino';
import { systemClock } from '../clock.js';
import { WitnessState, createWitnessApp, witnessHandlers } from '../cluster/witness.js';
import { dirname } from 'node:path';
import { UdpServer } from '../peer/udp.js';
import { ReplayGuard } from '../peer/replay.js';
import { keyListProblems, readSecretFile } from '../config/secrets.js';
import { KeyUse, keyId, keysOf, type KeyInput, type Keys } from '../peer/keyring.js';
import { HaError } from '../errors.js';
import { listenServer, serverTlsOptions } from '../api/server.js';
import { TlsReloader } from '../peer/tls-reload.js';
import type { Server as HttpsServer } from 'node:https';
import { loadTls, type TlsFiles, type TlsMaterial } from '../peer/tls.js';
import { ownProtocol } from '../peer/protocol.js';

/**
 * The witness's TLS files from `--tls-cert`, `--tls-key`, `--tls-ca`: all three or none, each checked
 * (readable, PEM, key mode 0600 and matching, issued by the CA); a problem names its option.
 */
export function witnessTls(opts: { tlsCert?: string; tlsKey?: string; tlsCa?: string }): TlsMaterial | null {
  const given = { cert: opts.tlsCert, key: opts.tlsKey, ca: opts.tlsCa };
  const set = Object.entries(given).filter(([, v]) => v);
  if (set.length === 0) return null;
  if (set.length < 3) {
    const missing = Object.entries(given).filter(([, v]) => !v).map(([k]) => `--tls-${k}`);
    throw new HaError('USAGE', `TLS needs --tls-cert, --tls-key and --tls-ca together (missing ${missing.join(', ')})`);
  }
  return loadTls(given as TlsFiles, '--tls-');
}

/**
 * The witness's key(s): from files (mode 0600, owned by the running user; `--secret-file` given once per
 * key while the secret is rotated, the first signing) or the NHA_SECRET environment variable (one key),
 * never from the command line (visible to every user in `ps`). Held to the nodes' rules.
 */
export function witnessSecret(files: readonly string[], env: string | undefined): Keys {
  let keys: string[];
  if (files.length > 0) {
    keys = files.map((file) => {
      const r = readSecretFile(file);
      if ('problem' in r) throw new HaError('CONFIG_INVALID', `--secret-file: ${r.problem}`);
      return r.value;
    });
  } else if (env) {
    keys = [env];
  } else {
    throw new HaError('CONFIG_INVALID', 'the witness needs the cluster secret: export NHA_SECRET or pass --secret-file FILE (mode 0600); it is never taken from the command line');
  }
  const problems = keyListProblems(keys);
  if (problems.length) throw new HaError('CONFIG_INVALID', `the witness secret ${problems[0]}${files.length ? ` (--secret-file ${files.join(', ')})` : ''}`);
  return keysOf(keys);
}

/** Run the witness process until SIGTERM/SIGINT. */
export async function runWitness(opts: { listen: string; file: string; secret: KeyInput; maxLeaseMs: number; tls?: TlsMaterial | null }): Promise<void> {
  const m = /^(.*):(\d+)$/.exec(opts.listen);
  if (!m) throw new HaError('USAGE', `--listen must be host:port, got ${opts.listen}`);
  const dest = pino.destination(2);
  dest.on('error', () => undefined); // stderr on a full disk must not stop the witness
  const log = pino({ base: { role: 'witness' } }, dest);
  const state = new WitnessState(systemClock, opts.file, opts.maxLeaseMs);
  // Nothing signed before this start, nor before a node's last accepted request, is accepted (HTTP and UDP).
  const replay = new ReplayGuard(`${dirname(opts.file)}/replay-marks.json`);
  const keys = keysOf(opts.secret);
  const keyUse = new KeyUse(keys, (node, id, before) => log.info({ node, keyId: id, before }, `${node} signs with key id ${id}${before ? ` (was ${before})` : ''}`));
  // Each node's protocol version and release, logged when it changes (and every refusal of a version).
  const versions = new Map<string, string>();
  const onProtocol = (node: string, protocol: number, release: string | null, problem: string | null) => {
    const k = `${protocol}|${release}|${problem}`;
    if (versions.get(node) === k) return;
    if (versions.size >= 16 && !versions.has(node)) versions.delete(versions.keys().next().value as string);
    versions.set(node, k);
    if (problem) log.warn({ code: 'PEER_INCOMPATIBLE', node, protocol, release }, `refused ${node}: ${problem}`);
    else log.info({ node, protocol, release }, `${node} speaks protocol ${protocol} (release ${release ?? 'unknown'})`);
  };
  const app = createWitnessApp(state, opts.secret, (reason) => log.warn({ code: 'PEER_AUTH_FAILED' }, `rejected request: ${reason}`), { replay, keyUse, onProtocol });
  // With TLS the witness serves https and takes lease calls only from clients whose certificate the CA
  // issued for the node that signs them; /health stays open to monitoring.
  const { server, port } = await listenServer(app, { host: m[1].replace(/^\[|\]$/g, ''), port: Number(m[2]) }, opts.tls ?? null, (err) => log.error({ err: err.message }, 'the witness server could not accept a connection'));
  // Lease calls also arrive as signed datagrams on the same port number (witness.transport: udp).
  const udp = new UdpServer(null, opts.secret, witnessHandlers(state), (reason, from) => log.warn({ code: 'PEER_AUTH_FAILED', from }, `rejected datagram: ${reason}`), replay, keyUse, onProtocol);
  try {
    await udp.listen(m[1].replace(/^\[|\]$/g, ''), port);
  } catch (err) {
    server.close();
    throw new HaError('USAGE', `the witness cannot bind UDP ${opts.listen} (used for lease calls over UDP): ${(err as Error).message}`);
  }
  log.info({ listen: opts.listen, port, tls: opts.tls ? 'mutual' : 'off', protocol: ownProtocol().version, release: ownProtocol().release, signingKey: keyId(keys[0]), acceptedKeys: keys.map(keyId), ...state.read() }, `witness listening (${opts.tls ? 'HTTPS' : 'HTTP'} and UDP)`);
  // Renewed certificates are taken without a restart (polled, and at once on SIGHUP).
  const reloader = opts.tls
    ? new TlsReloader(opts.tls, {
        onReload: (t) => {
          (server as HttpsServer).setSecureContext(serverTlsOptions(t));
          log.info({ cert: t.files.cert, notAfter: t.notAfter.toISOString() }, `TLS files reloaded: valid until ${t.notAfter.toISOString()}`);
        },
        onProblem: (problems) =>
          log.warn({ problems }, `the TLS files changed but are not a valid set; still using the previous ones: ${problems.map((p) => `--tls-${p.field}: ${p.problem}`).join('; ')}`),
      })
    : null;
  reloader?.start();
  // SIGHUP (systemctl reload) never stops the witness: without TLS there is nothing to reload.
  process.on('SIGHUP', () => {
    if (reloader) reloader.check();
    else log.info('SIGHUP: nothing to reload (no TLS configured)');
  });
  const stop = () => {
    reloader?.stop();
    udp.close();
    replay.close();
    server.close(() => process.exit(0));
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}
