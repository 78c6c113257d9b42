/**
 * Keys for rotation without restarts in lockstep: a secret (or token) may be a list. The first one signs;
 * a message signed with any of them is accepted, and a reply is signed with the key its request was
 * verified with. Rotating is then three rolling steps, one node at a time: add the new key last
 * everywhere, move it first everywhere, drop the old one (docs/operations.md, "Rotating secrets").
 *
 * A key is named in status and logs by its key id: the first 8 hex digits of a SHA-256 over it (never
 * the key itself).
 */
import { createHash } from 'node:crypto';

/** Most keys a rotation holds at once (the new one, the old one, and room for a second rotation). */
export const MAX_KEYS = 4;

/** One key, or several (the first signs). In a string, keys are separated by newlines (env, files). */
export type KeyInput = string | readonly string[];

/** Non-empty list of keys; the first signs. */
export type Keys = readonly [string, ...string[]];

/** The keys of a list or of a string with one per line (blank lines and surrounding blanks dropped). */
export function splitKeys(k: KeyInput): string[] {
  return (typeof k === 'string' ? k.split('\n') : k).map((s) => s.trim()).filter((s) => s.length > 0);
}

export function keysOf(k: KeyInput): Keys {
  const list = splitKeys(k);
  if (list.length === 0) throw new Error('an empty key list');
  return list as unknown as Keys;
}

/** The key that signs. */
export function signingKey(k: KeyInput): string {
  return keysOf(k)[0];
}

const ids = new Map<string, string>();
/** Key id: 8 hex digits naming a key in status and logs (a SHA-256 prefix: the key itself is never shown). */
export function keyId(key: string): string {
  let id = ids.get(key);
  if (!id) {
    id = createHash('sha256').update('nimbus-ha key id\n').update(key).digest('hex').slice(0, 8);
    if (ids.size > 64) ids.clear();
    ids.set(key, id);
  }
  return id;
}

/** Which key each peer last signed with (status: a rotation is done when every peer uses the new one). */
export class KeyUse {
  private readonly byNode = new Map<string, { keyId: string; at: number }>();

  constructor(private readonly keys: Keys) {}

  used(node: string, key: string, nowMs = Date.now()): void {
    const cur = this.byNode.get(node);
    const id = keyId(key);
    if (cur && cur.keyId === id && nowMs - cur.at < 1000) return;
    if (this.byNode.size > 64 && !cur) return; // bounded: only authenticated senders get here
    this.byNode.set(node, { keyId: id, at: nowMs });
  }

  status(): { signingKey: string; acceptedKeys: string[]; peers: Record<string, { keyId: string; at: string }> } {
    return {
      signingKey: keyId(this.keys[0]),
      acceptedKeys: this.keys.map(keyId),
      peers: Object.fromEntries([...this.byNode].map(([n, v]) => [n, { keyId: v.keyId, at: new Date(v.at).toISOString() }])),
    };
  }
}
