/**
 * The process supervisor signals a whole process group by the PID it recorded. PIDs are reused (32,768 of
 * them on many hosts), so a record that outlived its group must never reach whoever holds the number now.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ProcessSupervisor } from '../../adapters/nimbus/process-supervisor.js';

const dir = mkdtempSync(join(tmpdir(), 'nha-supervisor-'));
const strangers: ChildProcess[] = [];
afterAll(() => {
  for (const s of strangers) if (s.pid) try { process.kill(-s.pid, 'SIGKILL'); } catch { /* gone */ }
  rmSync(dir, { recursive: true, force: true });
});

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};
const startTime = (pid: number) => {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
};

/** A process that leads a group of its own, as `timeout`, a shell or a daemon does: not ours. */
async function stranger(): Promise<number> {
  const s = spawn('sleep', ['30'], { detached: true, stdio: 'ignore' });
  strangers.push(s);
  await new Promise((r) => s.once('spawn', r));
  return s.pid!;
}

const supervisor = (pidFile: string) => new ProcessSupervisor({ command: ['sleep', '30'], pidFile, stopTimeoutMs: 2000, startGraceMs: 100 });

describe.skipIf(process.platform !== 'linux')('process supervisor and reused PIDs', () => {
  it('a recorded group whose PID now belongs to another process is neither signalled nor taken for the service', async () => {
    const pid = await stranger();
    const pidFile = join(dir, 'reused.pid');
    // What a restarted sidecar finds: the PID of its old service, now reused, and the old start time.
    writeFileSync(pidFile, `${pid} ${Number(startTime(pid)) - 1}\n`);
    const sup = supervisor(pidFile);
    expect(await sup.pid()).toBeNull();
    await sup.stop();
    expect(alive(pid)).toBe(true);
    // Starting the service kills no "leftover helpers" of that group either.
    await sup.start();
    expect(alive(pid)).toBe(true);
    const own = await sup.pid();
    expect(own).not.toBeNull();
    expect(own).not.toBe(pid);
    expect(readFileSync(pidFile, 'utf8').trim()).toBe(`${own} ${startTime(own!)}`);
    await sup.stop();
    expect(alive(own!)).toBe(false);
    expect(alive(pid)).toBe(true);
  });

  // The real case: the service died, its PID went to a new group leader, and the supervisor that had
  // started it stops "its" group. Reusing a PID on purpose needs ns_last_pid, so root.
  const canPickPid = process.getuid?.() === 0 && existsSync('/proc/sys/kernel/ns_last_pid');
  it.skipIf(!canPickPid)('after the service died and its PID was reused by another group leader, stop() leaves that group alone', async () => {
    const sup = supervisor(join(dir, 'inmemory.pid'));
    await sup.start();
    const pid = (await sup.pid())!;
    process.kill(-pid, 'SIGKILL');
    for (let i = 0; i < 100 && existsSync(`/proc/${pid}`); i++) await new Promise((r) => setTimeout(r, 20));
    expect(existsSync(`/proc/${pid}`)).toBe(false);
    // Hand the same PID to a stranger (other processes may fork in between: a few tries).
    let got = 0;
    for (let i = 0; i < 20 && got !== pid; i++) {
      writeFileSync('/proc/sys/kernel/ns_last_pid', String(pid - 1));
      got = await stranger();
    }
    expect(got).toBe(pid);
    expect(await sup.pid()).toBeNull();
    await sup.stop();
    expect(alive(pid)).toBe(true);
  });

  /** A service started by one supervisor, whose PID file a second (restarted) supervisor then reads. */
  const startedBy = async (pidFile: string): Promise<number> => {
    const first = supervisor(pidFile);
    await first.start();
    return (await first.pid())!;
  };

  it('a restarted supervisor still stops the group it recorded (same PID and start time)', async () => {
    const pid = await startedBy(join(dir, 'same.pid'));
    const second = supervisor(join(dir, 'same.pid'));
    expect(await second.pid()).toBe(pid);
    await second.stop();
    expect(alive(pid)).toBe(false);
  });

  it('a PID file without a start time (older versions) is still honoured', async () => {
    const pid = await startedBy(join(dir, 'legacy.pid'));
    writeFileSync(join(dir, 'legacy.pid'), `${pid}\n`);
    const second = supervisor(join(dir, 'legacy.pid'));
    await second.stop();
    expect(alive(pid)).toBe(false);
  });
});
