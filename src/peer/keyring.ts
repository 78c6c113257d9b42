/**
 * Keys for rotation without restarts in lockstep: a secret (or token) may be a list. The first one signs;
 * a message signed with any of them is accepted, and a reply is signed with the key its request was
 * verified with. Rotating is then three rolling steps, one process at a time: add the new key last
 * everywhere, move it first everywhere, drop the old one (docs/operations.md, "Rotating secrets").
 *
 * A string is always one key, exactly as given (a secret may hold newlines: `openssl rand -base64 64`
 * wraps its output); lists come from YAML lists or from several secret files.
 *
 * A key is named by its key id, `nimbus-ha key-id` prints it: the first 8 hex digits of
 * SHA-256("nimbus-ha key id\n" + key). Key ids are shown to admins only (GET /admin/keys).
 */
import { createHash } from 'node:crypto';

/** One key, or several (the first signs). */
export type KeyInput = string | readonly string[];

/** Non-empty list of keys; the first signs. */
export type Keys = readonly [string, ...string[]];

/** The keys of `k`: a string is one key; a list as it is (validated where it was configured). */
export function keysOf(k: KeyInput): Keys {
  if (typeof k === 'string') return [k];
  if (k.length === 0) throw new Error('an empty key list');
  return k as Keys;
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

  constructor(
    private readonly keys: Keys,
    /** Called when a peer signs with another key than before (the witness logs it). */
    private readonly onChange?: (node: string, keyId: string, before: string | null) => void,
  ) {}

  used(node: string, key: string, nowMs = Date.now()): void {
    const cur = this.byNode.get(node);
    const id = keyId(key);
    if (cur && cur.keyId === id && nowMs - cur.at < 1000) return;
    if (this.byNode.size > 64 && !cur) return; // bounded: only authenticated senders get here
    this.byNode.set(node, { keyId: id, at: nowMs });
    if (cur?.keyId !== id) this.onChange?.(node, id, cur?.keyId ?? null);
  }

  status(): { signingKey: string; acceptedKeys: string[]; peers: Record<string, { keyId: string; at: string }> } {
    return {
      signingKey: keyId(this.keys[0]),
      acceptedKeys: this.keys.map(keyId),
      peers: Object.fromEntries([...this.byNode].map(([n, v]) => [n, { keyId: v.keyId, at: new Date(v.at).toISOString() }])),
    };
  }
}
