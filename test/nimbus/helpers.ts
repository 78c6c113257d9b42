import { execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DerbyTool } from '../../adapters/nimbus/derby-tool.js';

function has(cmd: string, args: string[]): boolean {
  try {
    execFileSync(cmd, args, { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** Why the real-Derby tests cannot run here, or null when java, javac and Derby are installed. */
export function derbyMissing(): string | null {
  if (!has('java', ['-version']) || !has('javac', ['-version'])) return 'java/javac not found (install a JDK: scripts/install-system-deps.sh)';
  if (!DerbyTool.available()) return 'Derby not found at /usr/share/java/derby.jar (Debian libderby-java: scripts/install-system-deps.sh)';
  return null;
}

/** Why the sqlite tests cannot run here, or null. */
export function sqliteMissing(): string | null {
  return has('sqlite3', ['-version']) ? null : 'sqlite3 shell not found (Debian sqlite3: scripts/install-system-deps.sh)';
}

export function skipMessage(reason: string | null): void {
  if (reason) console.warn(`[nimbus tests] SKIPPED: ${reason}`);
}

export const tempDir = (tag: string) => mkdtempSync(join(tmpdir(), `nha-nimbus-${tag}-`));

export function percentile(values: number[], p: number): number {
  if (!values.length) return NaN;
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)];
}
