/**
 * The environment of every process nimbus-ha starts (services, hooks, VIP commands, probes, PostgreSQL
 * tools, the Nimbus service): an explicit allow-list of the parent's variables plus what the caller
 * passes, so the cluster secret, the admin token and the database and repository credentials never
 * reach a child (a service's `ps e`, core dump or crash report would otherwise carry them).
 *
 * Operators can pass more variables through by name with NHA_CHILD_ENV_ALLOW (comma-separated); the
 * credentials below are dropped even then, and even when a caller passes them on purpose they must
 * come through `extra`.
 */

/** Variables every child gets from the parent when set. */
export const CHILD_ENV_ALLOW: readonly string[] = [
  'PATH',
  'HOME',
  'USER',
  'LOGNAME',
  'SHELL',
  'LANG',
  'LANGUAGE',
  'TZ',
  'TMPDIR',
  'TERM',
  'NODE_EXTRA_CA_CERTS',
  'AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED',
];
/** Prefixes of variables every child gets (locale settings). */
const ALLOW_PREFIXES = ['LC_'];

/** Never inherited, whatever NHA_CHILD_ENV_ALLOW says. */
export const CHILD_ENV_DENY: readonly string[] = [
  'NHA_SECRET',
  'NHA_DATA_SECRET',
  'NHA_ADMIN_TOKEN',
  'NHA_DB_SUPERUSER_PASSWORD',
  'NHA_DB_PASSWORD',
  'NHA_DB_REPL_PASSWORD',
  'NHA_REPO_ACCESS_KEY_ID',
  'NHA_REPO_SECRET_ACCESS_KEY',
  'NHA_WEBHOOK_SECRET',
  'NHA_ETCD_PASSWORD',
  'PGPASSWORD',
  'AWS_SECRET_ACCESS_KEY',
  'AWS_SESSION_TOKEN',
];

/** The environment for a child: allowed parent variables, then `extra` (which wins). */
export function childEnv(extra: Record<string, string | undefined> = {}, parent: NodeJS.ProcessEnv = process.env): Record<string, string> {
  const more = (parent.NHA_CHILD_ENV_ALLOW ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  const allowed = new Set([...CHILD_ENV_ALLOW, ...more]);
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(parent)) {
    if (v === undefined || CHILD_ENV_DENY.includes(k)) continue;
    if (allowed.has(k) || ALLOW_PREFIXES.some((p) => k.startsWith(p))) out[k] = v;
  }
  for (const [k, v] of Object.entries(extra)) if (v !== undefined) out[k] = v;
  return out;
}

/** Remove the credentials nimbus-ha itself read from its own environment (after the config is loaded). */
export function scrubOwnEnv(env: NodeJS.ProcessEnv = process.env): void {
  for (const k of CHILD_ENV_DENY) if (k.startsWith('NHA_')) delete env[k];
}
