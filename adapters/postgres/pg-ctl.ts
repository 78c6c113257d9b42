/**
 * pg_ctl process control for `PostgresNode`: status, start and stop of the local server, run as the
 * server's OS user, and the tail of the server log that pg_ctl writes (quoted when a start fails or a
 * standby does not stream).
 */
import { open } from 'node:fs/promises';
import { HaError } from '../../src/errors.js';
import { redact, run, type OsUser } from './proc.js';

export class PgCtl {
  constructor(
    /** The pg_ctl binary (external mode: `pgCtlPath`; embedded: beside the embedded binaries). */
    private readonly pgCtl: string,
    private readonly dataDir: string,
    /** Where pg_ctl writes the server log. */
    readonly logFile: string,
    private readonly osUser: () => Promise<OsUser | null>,
    private readonly secrets: string[],
  ) {}

  private async ctl(args: string[], timeoutMs = 120_000) {
    return run(this.pgCtl, args, { user: await this.osUser(), timeoutMs });
  }

  /** `pg_ctl status`: whether the server runs. */
  async isRunning(): Promise<boolean> {
    const r = await this.ctl(['status', '-D', this.dataDir], 10_000);
    return r.code === 0;
  }

  /** `pg_ctl start`, waiting until the server accepts sessions; `what` names the server in the error. */
  async start(what: string): Promise<void> {
    const r = await this.ctl(['start', '-D', this.dataDir, '-l', this.logFile, '-w', '-t', '120']);
    if (r.code !== 0) {
      throw new HaError('DB_FAILED', `PostgreSQL did not start (${what}): ${redact(r.stderr || r.stdout, this.secrets).trim()}\n${await this.logTail()}`);
    }
  }

  /** `pg_ctl stop` in `mode`, waiting until the server is down; a server that does not run is not an error. */
  async stop(mode: 'fast' | 'immediate', what: string): Promise<void> {
    const r = await this.ctl(['stop', '-D', this.dataDir, '-m', mode, '-w', '-t', '120']);
    if (r.code !== 0 && !/not running|No such file|does not exist/i.test(r.stderr)) {
      throw new HaError('DB_FAILED', `PostgreSQL did not stop (${what}): ${redact(r.stderr, this.secrets).trim()}`);
    }
  }

  async logTail(): Promise<string> {
    try {
      const fh = await open(this.logFile, 'r');
      try {
        const { size } = await fh.stat();
        const len = Math.min(size, 1500);
        const buf = Buffer.alloc(len);
        await fh.read(buf, 0, len, size - len);
        return redact(buf.toString(), this.secrets);
      } finally {
        await fh.close();
      }
    } catch {
      return '';
    }
  }
}
