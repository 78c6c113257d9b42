/**
 * Names of files that PostgreSQL archives: WAL segments (24 hex digits), partial segments left at a
 * timeline switch, backup history files and timeline history files. Anything else is refused by the
 * archive receiver so a peer cannot write arbitrary paths.
 */
const WAL_FILE_RE = /^(?:[0-9A-F]{24}(?:\.partial|\.[0-9A-F]{8}\.backup)?|[0-9A-F]{8}\.history)$/;

export function isArchiveFileName(name: string): boolean {
  return WAL_FILE_RE.test(name);
}

/** Sort order in which a standby needs files: history files first, then segments in WAL order. */
export function compareArchiveNames(a: string, b: string): number {
  const ha = a.endsWith('.history') ? 0 : 1;
  const hb = b.endsWith('.history') ? 0 : 1;
  if (ha !== hb) return ha - hb;
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * Replication slot name for a node: slots allow only lower-case letters, digits and underscores, at
 * most 63 characters.
 */
export function slotNameFor(node: string): string {
  const s = node.toLowerCase().replace(/[^a-z0-9_]/g, '_').slice(0, 63);
  return s || 'standby';
}
