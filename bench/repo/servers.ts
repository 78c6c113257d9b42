/** Cumulus stand-ins (s3rver) as child processes, so the tools measured do not share their event loop. */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';

export const ACCESS = 'bench-key';
export const SECRET = 'bench-secret';

export interface ServerProc {
  url: string;
  port: number;
  dir: string;
  child: ChildProcess;
}

const fixtureMain = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'fixtures', 'cumulus', 'main.js');

export async function startServer(label: string): Promise<ServerProc> {
  const dir = await mkdtemp(join(tmpdir(), `nha-bench-${label}-`));
  // --multipart: the benchmark copies to a generic S3 server (1 GiB objects in parts), not to Cumulus.
  const child = spawn(process.execPath, [fixtureMain, '--dir', dir, '--port', '0', '--access-key', ACCESS, '--secret-key', SECRET, '--multipart'], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const line = await new Promise<string>((resolve, reject) => {
    const rl = createInterface({ input: child.stdout! });
    const timer = setTimeout(() => reject(new Error(`s3rver ${label} did not start in 20 s`)), 20_000);
    rl.once('line', (l) => {
      clearTimeout(timer);
      resolve(l);
    });
    child.once('exit', (code) => reject(new Error(`s3rver ${label} exited with ${code}`)));
  });
  const { url } = JSON.parse(line) as { url: string };
  return { url, port: Number(new URL(url).port), dir, child };
}

export async function stopServer(s: ServerProc): Promise<void> {
  if (s.child.exitCode === null && s.child.pid) {
    const exited = new Promise((r) => s.child.once('exit', r));
    s.child.kill('SIGTERM');
    await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
    if (s.child.exitCode === null) s.child.kill('SIGKILL');
  }
  await rm(s.dir, { recursive: true, force: true });
}
