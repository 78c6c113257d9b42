/**
 * `config from-nimbus` prints sections that parse and cover every durable item of a Nimbus-shaped
 * home; `config check`'s warnings name a file tree laid over live Derby / sqlite files and durable
 * databases that no nimbusState item covers. (A fake layout: Derby directories are recognised by
 * service.properties + seg0, sqlite files by their header; no Java needed.)
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { fromNimbus } from '../../adapters/nimbus/from-nimbus.js';
import { clusterConfigSchema } from '../../src/config/schema.js';
import { clusterCrossChecks } from '../../src/config/checks.js';
import { parseConfigText } from '../../src/config/load.js';
import { nimbusStateWarnings } from '../../src/replication/nimbus-state/coverage.js';
import { tempDir } from './helpers.js';

const dir = tempDir('cfg');
const home = join(dir, 'nimbus');
const put = (rel: string, data: string | Buffer) => {
  mkdirSync(join(home, rel, '..'), { recursive: true });
  writeFileSync(join(home, rel), data);
};
for (const db of ['WorkspacePersistenceDB', 'WorkspaceAccountingDB']) {
  put(`services/var/nimbus/${db}/service.properties`, 'derby.serviceProtocol=org.apache.derby.database.Database\n');
  put(`services/var/nimbus/${db}/seg0/c10.dat`, Buffer.alloc(4096));
}
put('cumulus/etc/authz.db', Buffer.concat([Buffer.from('SQLite format 3\u0000', 'latin1'), Buffer.alloc(1024)]));
put('cumulus/etc/cumulus.ini', `[cb]\nhostname=head.example.org\nport=8888\n[posix]\ndirectory=${home}/cumulus/posixdata\n[authz]\ndb=${home}/cumulus/etc/authz.db\n`);
put('nimbus-setup.conf', '[nimbussetup]\nhostname: head.example.org\n');
put('services/etc/nimbus/query/query.conf', 'https.port=8444\n');
mkdirSync(join(home, 'var'), { recursive: true });
mkdirSync(join(home, 'web'), { recursive: true });
mkdirSync(join(home, 'services/share/nimbus/lib'), { recursive: true });

const base = `node: a
listen: { host: 127.0.0.1, port: 8700 }
secret: ${randomBytes(24).toString('hex')}
adminToken: ${randomBytes(24).toString('hex')}
dataDir: ${join(dir, 'data')}
peers: [ { node: b, urls: [ "http://127.0.0.2:8700" ] } ]
quorum: { allowTwoNodeWithoutWitness: true }
`;
const env = { NIMBUS_PROBE_ACCESS_ID: 'probe', NIMBUS_PROBE_SECRET: 'probe-secret' };

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('config from-nimbus and the live-database warnings', () => {
  it('prints a config that parses, covers every database, and leaves nothing uncovered', () => {
    const text = fromNimbus(home);
    expect(text).toContain('head.example.org');
    expect(text).toContain(':8444/');
    const r = parseConfigText(base + text, clusterConfigSchema, { env, crossChecks: [clusterCrossChecks] });
    expect(r.problems).toEqual([]);
    expect(r.config!.nimbusState!.derby[0].path).toBe('services/var/nimbus');
    expect(r.config!.nimbusState!.sqlite[0].path).toBe(join(home, 'cumulus/etc/authz.db'));
    expect(r.config!.files!.trees.map((t) => t.name)).toEqual(expect.arrayContaining(['nimbus-var', 'nimbus-etc', 'cumulus-etc', 'nimbus-web']));
    expect(nimbusStateWarnings(r.config!)).toEqual([]);
  });

  it('warns about a plain tree over the whole home and about databases no item covers', () => {
    const text = `${base}files:\n  trees:\n    - { name: home, path: ${home} }\nnimbusState:\n  home: ${home}\n  sqlite: [ { name: authz } ]\n`;
    const r = parseConfigText(text, clusterConfigSchema, { env });
    expect(r.problems).toEqual([]);
    const w = nimbusStateWarnings(r.config!);
    expect(w.filter((x) => x.startsWith('files.trees[home]')).length).toBe(3);
    expect(w.some((x) => x.includes('WorkspacePersistenceDB') && x.includes('Derby database'))).toBe(true);
    expect(w.some((x) => x.includes('authz.db') && x.includes('sqlite'))).toBe(true);
    // The Derby unit is durable state no item covers; authz.db is covered.
    expect(w.filter((x) => x.startsWith('nimbusState:')).length).toBe(2);
    expect(w.some((x) => x.startsWith('nimbusState:') && x.includes('authz.db'))).toBe(false);
  });

  it('an excluded database is not reported', () => {
    const text = `${base}files:\n  trees:\n    - { name: home, path: ${home}, exclude: ["services/var/**", "*.db"] }\n`;
    const r = parseConfigText(text, clusterConfigSchema, { env });
    expect(nimbusStateWarnings(r.config!).filter((x) => x.startsWith('files.'))).toEqual([]);
  });
});
