import { readFileSync } from 'node:fs';
import { HaError } from '../errors.js';

/**
 * The peer protocol's version: what heartbeats, votes, takeover offers, witness calls and the data
 * paths' `/peer` requests mean.
 *
 * - A release speaks its own version and can still speak the previous one; it reads messages of both.
 * - Every message states the version it is written in (`v`) and its sender's own version (`max`). A
 *   sender writes in its own version unless the receiver's own is the previous one, which it then
 *   speaks (it learns the receiver's version from every answer, refusal included); a reply is written
 *   in the request's version. So a pair one release apart, as in every rolling upgrade, always talks.
 * - A message outside [own - 1, own] gets a signed `PEER_INCOMPATIBLE` answer (never silence) naming
 *   both versions; a peer that answers so, or speaks so, is shown as incompatible and never as dead.
 * - Version 1 is every release before versions were stated: a message without a version is version 1,
 *   and a release of version 1 checks nothing.
 */
export const PROTOCOL_VERSION = 2;

/** The version a message is written in (HTTP header; UDP frame field `v`). */
export const PROTOCOL_HEADER = 'x-nha-protocol';
/** The sender's own version (HTTP header; UDP frame field `m`). */
export const PROTOCOL_MAX_HEADER = 'x-nha-protocol-max';
/** The sender's release (HTTP header; UDP frame field `r`). */
export const RELEASE_HEADER = 'x-nha-release';

/** The nimbus-ha release (package.json's version), or `fallback` when it cannot be read. */
export function packageVersion(fallback = 'unknown'): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version?: unknown };
    return typeof pkg.version === 'string' ? pkg.version : fallback;
  } catch {
    return fallback;
  }
}

/**
 * The version this process speaks: PROTOCOL_VERSION, unless `NHA_PROTOCOL_VERSION` says otherwise. That
 * variable exists for upgrade tests (`npm run test:upgrade`): a node made to speak 1 behaves as a release
 * from before versions were stated, one made to speak a later version shows how a pair one release
 * apart negotiates and how one two releases apart is refused. It is not for production use.
 */
function chosenVersion(): number {
  const env = process.env.NHA_PROTOCOL_VERSION;
  if (env === undefined || env === '') return PROTOCOL_VERSION;
  const v = Number(env);
  if (!Number.isInteger(v) || v < 1 || v > 1000) {
    throw new HaError('CONFIG_INVALID', `NHA_PROTOCOL_VERSION: expected a whole number from 1 to 1000, got ${JSON.stringify(env)}`);
  }
  return v;
}

export interface ProtocolInfo {
  /** The version this node speaks. */
  version: number;
  /** The versions it reads and writes: [version - 1, version]. */
  accepts: [number, number];
  /** The nimbus-ha release (package version). */
  release: string;
}

let own: ProtocolInfo | null = null;

/** This process's protocol (read once). */
export function ownProtocol(): ProtocolInfo {
  if (!own) {
    const version = chosenVersion();
    own = { version, accepts: [Math.max(1, version - 1), version], release: packageVersion() };
  }
  return own;
}

/** A message's stated versions: written in `v` (1 when absent), its sender's own `max` (`v` when absent). */
export function statedVersions(v: unknown, max: unknown): { v: number; max: number } {
  const num = (x: unknown) => {
    const n = typeof x === 'string' && x !== '' ? Number(x) : x;
    return typeof n === 'number' && Number.isInteger(n) && n >= 1 ? n : null;
  };
  const written = num(v) ?? 1;
  return { v: written, max: Math.max(written, num(max) ?? written) };
}

/** Null when a message written in version `theirs` is read; else why not, saying which side to upgrade. */
export function protocolProblem(theirs: number, me: ProtocolInfo = ownProtocol()): string | null {
  if (me.version === 1) return null; // releases of version 1 did not check
  const [lo, hi] = me.accepts;
  if (theirs > hi) return `the peer speaks protocol ${theirs}, this node (release ${me.release}) speaks ${lo}-${hi}: upgrade this node (one release at a time)`;
  if (theirs < lo) return `the peer speaks protocol ${theirs}, this node (release ${me.release}) speaks ${lo}-${hi}: upgrade the peer first (one release at a time)`;
  return null;
}

/**
 * Whether a peer whose own version is `max` and this node share a version (each speaks its own and the
 * previous one). A message this node cannot read from such a peer is a step of the negotiation (the
 * peer writes in this node's version once refused), not an incompatibility.
 */
export function canTalk(max: number, me: ProtocolInfo = ownProtocol()): boolean {
  return me.version === 1 || Math.abs(max - me.version) <= 1;
}

/** What this node writes to each target (URL) whose own version is the previous one; absent: its own. */
const spoken = new Map<string, number>();
const MAX_TARGETS = 64;

/** The version to write in toward `target`. */
export function versionFor(target: string, me: ProtocolInfo = ownProtocol()): number {
  return spoken.get(target) ?? me.version;
}

/**
 * `target` stated its own version `max` (in an answer or a refusal). Returns true when that changes what
 * this node writes to it (a request refused for its version is then worth sending again at once).
 */
export function learnVersion(target: string, max: number, me: ProtocolInfo = ownProtocol()): boolean {
  const before = versionFor(target, me);
  if (max >= me.version || max < me.accepts[0]) spoken.delete(target);
  else {
    if (!spoken.has(target) && spoken.size >= MAX_TARGETS) spoken.delete(spoken.keys().next().value as string);
    spoken.set(target, max);
  }
  return versionFor(target, me) !== before;
}

/** Headers stating a message written in `v` by this node (none from a release of version 1). */
export function protocolHeaders(v: number = ownProtocol().version, me: ProtocolInfo = ownProtocol()): Record<string, string> {
  return me.version >= 2 ? { [PROTOCOL_HEADER]: String(v), [PROTOCOL_MAX_HEADER]: String(me.version), [RELEASE_HEADER]: me.release } : {};
}

/** The body of a refusal for an unsupported version (signed like every answer to an authenticated request). */
export function incompatibleBody(problem: string, me: ProtocolInfo = ownProtocol()): { error: 'PEER_INCOMPATIBLE'; message: string; protocol: number; accepts: [number, number]; release: string } {
  return { error: 'PEER_INCOMPATIBLE', message: problem, protocol: me.version, accepts: me.accepts, release: me.release };
}
