import { isIP } from 'node:net';
import { HaError } from '../errors.js';

/**
 * A `host:port` command-line address (`--listen 0.0.0.0:8790`, `[::1]:8790`), checked before anything
 * binds it, so a mistake reads as one sentence naming the option instead of a Node error.
 */
export function parseListen(flag: string, value: string): { host: string; port: number } {
  const expected = `expected host:port with a port from 0 to 65535, e.g. 0.0.0.0:8790`;
  const m = /^(\[[^\]]+\]|[^:]*|.*:.*(?=:\d+$)):(\d+)$/.exec(value);
  if (!m) throw new HaError('USAGE', `${flag} ${value}: not an address (${expected})`);
  const port = Number(m[2]);
  if (port > 65535) throw new HaError('USAGE', `${flag} ${value}: port ${m[2]} is out of range (${expected})`);
  const host = m[1].replace(/^\[|\]$/g, '');
  if (host === '') throw new HaError('USAGE', `${flag} ${value}: no host (${expected}; 0.0.0.0 listens on every IPv4 address)`);
  if (m[1].startsWith('[') && isIP(host) !== 6) throw new HaError('USAGE', `${flag} ${value}: ${host} is not an IPv6 address (${expected})`);
  return { host, port };
}

const BIND_ERRORS: Record<string, string> = {
  EADDRINUSE: 'the address is already in use (another witness or service listens there; pick another port or stop it)',
  EADDRNOTAVAIL: 'no interface of this host has that address (expected one of its addresses, or 0.0.0.0)',
  EACCES: 'permission denied (ports below 1024 need root or CAP_NET_BIND_SERVICE; expected a port from 1024)',
  ENOTFOUND: 'the host name does not resolve (expected an address or a resolvable name)',
};

/** A bind failure of `flag value` as one sentence naming the option; other errors pass through. */
export function listenError(flag: string, value: string, err: unknown): unknown {
  const code = (err as NodeJS.ErrnoException)?.code;
  const why = code ? BIND_ERRORS[code] : undefined;
  return why ? new HaError('USAGE', `${flag} ${value}: ${why}`) : err;
}
