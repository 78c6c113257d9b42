import { execFileSync } from 'node:child_process';

/** Why a test that mounts a small tmpfs cannot run here (not root, no mount(8)), or null when it can. */
export function tmpfsUnavailable(): string | null {
  if (process.getuid?.() !== 0) return 'not root (mounting a small tmpfs needs root); run as root: npm run test:system';
  try {
    execFileSync('mount', ['--version'], { stdio: 'ignore' });
  } catch {
    return 'mount(8) not found';
  }
  return null;
}
