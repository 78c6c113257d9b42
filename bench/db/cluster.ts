/** Two embedded PostgreSQL nodes in a temp dir on loopback, for the db benchmark. */

import { freePort } from '../../fixtures/cluster.js';
import { execFileSync } from 'node:child_process';
import { chmod, chown, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { initTemplate, PostgresNode } from '../../adapters/postgres/embedded.js';
import { parseDbConfig } from '../../src/replication/db/config.js';

export const PASSWORD = 'bench-super-pw';


export class BenchCluster {
  root = '';
  nodes: PostgresNode[] = [];

  async create(names: string[], settings: Record<string, string>): Promise<PostgresNode[]> {
    this.root = await mkdtemp(join(tmpdir(), 'nha-bench-db-'));
    await chmod(this.root, 0o755);
    const owner = process.getuid?.() === 0 ? { uid: Number(execFileSync('id', ['-u', 'postgres']).toString()), gid: Number(execFileSync('id', ['-g', 'postgres']).toString()) } : null;
    const template = join(this.root, 'template');
    await initTemplate(template, { superuser: 'postgres', password: PASSWORD, walSegmentSizeMb: 16 });
    for (const name of names) {
      await mkdir(join(this.root, name), { mode: 0o755 });
      if (owner) await chown(join(this.root, name), owner.uid, owner.gid);
      const cfg = parseDbConfig(
        { dataDir: join(this.root, name, 'data'), archiveDir: join(this.root, name, 'archive'), port: await freePort(), superuserPassword: PASSWORD, replicationPassword: 'bench-repl-pw', settings },
        {},
      );
      this.nodes.push(new PostgresNode(name, cfg, { fsyncClone: false }));
    }
    await this.nodes[0].init({ template });
    return this.nodes;
  }

  async destroy(): Promise<void> {
    for (const n of this.nodes) await n.stop('immediate').catch(() => undefined);
    if (this.root) await rm(this.root, { recursive: true, force: true });
  }
}

export async function connect(n: PostgresNode): Promise<pg.Client> {
  const c = new pg.Client({ host: '127.0.0.1', port: n.endpoint().port, user: 'postgres', password: PASSWORD, database: 'postgres' });
  c.on('error', () => undefined);
  await c.connect();
  return c;
}
