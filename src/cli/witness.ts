import pino from 'pino';
import { systemClock } from '../clock.js';
import { WitnessState, createWitnessApp, witnessHandlers } from '../cluster/witness.js';
import { dirname } from 'node:path';
import { UdpServer } from '../peer/udp.js';
import { ReplayGuard } from '../peer/replay.js';
import { readSecretFile, secretProblem } from '../config/secrets.js';
import { KeyUse, keysOf, MAX_KEYS, splitKeys, type KeyInput, type Keys } from '../peer/keyring.js';
import { HaError } from '../errors.js';
import { listenServer } from '../api/server.js';
import { loadTls, type TlsFiles, type TlsMaterial } from '../peer/tls.js';

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
 * The witness's key(s): from a file (mode 0600, owned by the running user) or the NHA_SECRET environment
 * variable, never from the command line (visible to every user in `ps`). Held to the nodes' rules. While
 * the secret is rotated, one per line: the first signs, a request signed with any is accepted.
 */
export function witnessSecret(file: string | undefined, env: string | undefined): Keys {
  let secret: string;
  if (file) {
    const r = readSecretFile(file);
    if ('problem' in r) throw new HaError('CONFIG_INVALID', `--secret-file: ${r.problem}`);
    secret = r.value;
  } else if (env) {
    secret = env;
  } else {
    throw new HaError('CONFIG_INVALID', 'the witness needs the cluster secret: export NHA_SECRET or pass --secret-file FILE (mode 0600); it is never taken from the command line');
  }
  const keys = splitKeys(secret);
  if (keys.length === 0) throw new HaError('CONFIG_INVALID', 'the witness secret is empty (expected a random secret, or one per line while rotating)');
  if (keys.length > MAX_KEYS) throw new HaError('CONFIG_INVALID', `the witness secret holds ${keys.length} keys (expected at most ${MAX_KEYS}, one per line: the new and the old ones while rotating)`);
  keys.forEach((k, i) => {
    const problem = secretProblem(k);
    if (problem) throw new HaError('CONFIG_INVALID', `the witness secret ${keys.length > 1 ? `(key ${i + 1} of ${keys.length}) ` : ''}${problem}`);
  });
  return keysOf(keys);
}

/** Run the witness process until SIGTERM/SIGINT. */
export async function runWitness(opts: { listen: string; file: string; secret: KeyInput; maxLeaseMs: number; tls?: TlsMaterial | null }): Promise<void> {
  const m = /^(.*):(\d+)$/.exec(opts.listen);
  if (!m) throw new HaError('USAGE', `--listen must be host:port, got ${opts.listen}`);
  const log = pino({ base: { role: 'witness' } }, pino.destination(2));
  const state = new WitnessState(systemClock, opts.file, opts.maxLeaseMs);
  // Nothing signed before this start, nor before a node's last accepted request, is accepted (HTTP and UDP).
  const replay = new ReplayGuard(`${dirname(opts.file)}/replay-marks.json`);
  const keyUse = new KeyUse(keysOf(opts.secret));
  const app = createWitnessApp(state, opts.secret, (reason) => log.warn({ code: 'PEER_AUTH_FAILED' }, `rejected request: ${reason}`), { replay, keyUse });
  // With TLS the witness serves https and takes lease calls only from clients whose certificate the CA
  // issued for the node that signs them; /health stays open to monitoring.
  const { server, port } = await listenServer(app, { host: m[1].replace(/^\[|\]$/g, ''), port: Number(m[2]) }, opts.tls ?? null);
  // Lease calls also arrive as signed datagrams on the same port number (witness.transport: udp).
  const udp = new UdpServer(null, opts.secret, witnessHandlers(state), (reason, from) => log.warn({ code: 'PEER_AUTH_FAILED', from }, `rejected datagram: ${reason}`), replay, keyUse);
  try {
    await udp.listen(m[1].replace(/^\[|\]$/g, ''), port);
  } catch (err) {
    server.close();
    throw new HaError('USAGE', `the witness cannot bind UDP ${opts.listen} (used for lease calls over UDP): ${(err as Error).message}`);
  }
  log.info({ listen: opts.listen, port, tls: opts.tls ? 'mutual' : 'off', ...state.read() }, `witness listening (${opts.tls ? 'HTTPS' : 'HTTP'} and UDP)`);
  const stop = () => {
    udp.close();
    replay.close();
    server.close(() => process.exit(0));
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}
