import { readFileSync, statSync } from 'node:fs';

/**
 * Rules for the cluster secret and the admin token: no placeholder, no short or low-entropy value, and
 * (checked across fields) not the same value for both. `openssl rand -base64 32` gives a good one.
 */

/** Minimum length of a secret or token. */
export const MIN_SECRET_LENGTH = 24;
/** Minimum estimated entropy in bits (distinct-character Shannon estimate over the value). */
export const MIN_SECRET_BITS = 96;

const EXPECTED = `expected a random value of at least ${MIN_SECRET_LENGTH} characters, e.g. from \`openssl rand -base64 32\``;

const PLACEHOLDER = /change[-_ ]?me|changeit|placeholder|replace[-_ ]?me|example|your[-_ ]?(secret|token)|insert|todo|xxxx|^(secret|password|token|admin)/i;

/** Shannon entropy of the value's characters times its length: a rough upper bound of its strength. */
export function estimatedBits(value: string): number {
  const counts = new Map<string, number>();
  for (const ch of value) counts.set(ch, (counts.get(ch) ?? 0) + 1);
  let h = 0;
  for (const c of counts.values()) {
    const p = c / value.length;
    h -= p * Math.log2(p);
  }
  return h * value.length;
}

/** Why `value` is not acceptable as a secret, as `problem (expected …)`, or null. */
export function secretProblem(value: string): string | null {
  if (value.length === 0) return `is empty (${EXPECTED})`;
  if (PLACEHOLDER.test(value)) return `looks like a placeholder (${EXPECTED})`;
  if (value.length < MIN_SECRET_LENGTH) return `is too short: ${value.length} characters (${EXPECTED})`;
  if (new Set(value).size < 10 || estimatedBits(value) < MIN_SECRET_BITS) return `has too little entropy (${EXPECTED})`;
  return null;
}

/** Most keys a rotation holds at once (the new one, the old one, and room for a second rotation). */
export const MAX_KEYS = 4;

/**
 * Problems of a key list while a secret is rotated (a node's config and the witness alike): too many,
 * each key held to the rules of a single one (named "key i of n" in a list), and no key twice.
 */
export function keyListProblems(list: readonly string[]): string[] {
  const out: string[] = [];
  if (list.length === 0) return ['is an empty list (expected a random secret, or a list of them while rotating)'];
  if (list.length > MAX_KEYS) out.push(`holds ${list.length} keys (expected at most ${MAX_KEYS}: the new and the old ones while rotating)`);
  list.forEach((k, i) => {
    const problem = k === '' ? 'is empty (expected a random secret)' : secretProblem(k);
    if (problem) out.push(`${list.length > 1 ? `key ${i + 1} of ${list.length} ` : ''}${problem}`);
  });
  if (new Set(list).size !== list.length) out.push('lists the same key twice (expected different keys)');
  return out;
}

/**
 * Read a secret from a file that only the running user can read: owned by it, mode 0600 or 0400.
 * Returns the value (trailing newline removed) or a problem.
 */
export function readSecretFile(file: string): { value: string } | { problem: string } {
  let st;
  try {
    st = statSync(file);
  } catch (err) {
    return { problem: `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message} (expected a file with the secret, mode 0600)` };
  }
  if (!st.isFile()) return { problem: `${file} is not a regular file (expected a file with the secret, mode 0600)` };
  if ((st.mode & 0o077) !== 0) {
    return { problem: `${file} is readable or writable by group or others (mode 0${(st.mode & 0o777).toString(8)}; expected mode 0600: chmod 600 ${file})` };
  }
  const uid = typeof process.getuid === 'function' ? process.getuid() : null;
  if (uid !== null && st.uid !== uid) return { problem: `${file} is owned by uid ${st.uid}, not by the user running nimbus-ha (uid ${uid}) (expected a file owned by that user, mode 0600)` };
  try {
    return { value: readFileSync(file, 'utf8').replace(/\r?\n$/, '') };
  } catch (err) {
    return { problem: `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}` };
  }
}
