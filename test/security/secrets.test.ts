import { execFile } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { clusterCrossChecks } from '../../src/config/checks.js';
import { EXAMPLE_CONFIG } from '../../src/config/example.js';
import { parseConfigText } from '../../src/config/load.js';
import { clusterConfigSchema } from '../../src/config/schema.js';
import { cliPath } from '../../fixtures/cluster.js';
import { randomSecret } from './helpers.js';

const run = promisify(execFile);
const check = (text: string, env: NodeJS.ProcessEnv = {}) => parseConfigText(text, clusterConfigSchema, { env, crossChecks: [clusterCrossChecks] });
const dir = mkdtempSync(join(tmpdir(), 'nha-secrets-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const base = (secret: string, token: string, extra = '') => `
node: a
listen: { host: 127.0.0.1, port: 8701 }
secret: ${JSON.stringify(secret)}
adminToken: ${JSON.stringify(token)}
dataSecret: ${JSON.stringify(randomSecret())}
dataDir: /tmp/x
peers: [ { node: b, urls: [ "http://127.0.0.1:8702" ] } ]
witness: { url: "http://127.0.0.1:8790" }
${extra}`;

describe('no default secrets', () => {
  it('`config example` writes no fallback values for the secret or the token', () => {
    expect(EXAMPLE_CONFIG).not.toMatch(/\$\{NHA_SECRET:-|\$\{NHA_ADMIN_TOKEN:-|change-me/);
  });

  it('the example with the variables unset fails with one problem per key, naming the key and the expected form', () => {
    const r = check(EXAMPLE_CONFIG);
    expect(r.config).toBeUndefined();
    expect(r.problems.map((p) => p.key).sort()).toEqual(['adminToken', 'dataSecret', 'secret']);
    expect(r.problems.find((p) => p.key === 'dataSecret')!.problem).toMatch(/NHA_DATA_SECRET is not set \(expected .*dataSecretFile/);
    expect(r.problems.find((p) => p.key === 'secret')!.problem).toMatch(/NHA_SECRET is not set \(expected a random value of at least 24 characters.*secretFile/);
    expect(r.problems.find((p) => p.key === 'adminToken')!.problem).toMatch(/NHA_ADMIN_TOKEN is not set \(expected .*adminTokenFile/);
    expect(check(EXAMPLE_CONFIG, { NHA_SECRET: randomSecret(), NHA_ADMIN_TOKEN: randomSecret(), NHA_DATA_SECRET: randomSecret() }).problems).toEqual([]);
  });

  it.each([
    ['a placeholder', 'change-me-to-a-long-random-secret', /placeholder/],
    ['a short value', 'Zq8#kL2!', /too short/],
    ['a low-entropy value', 'a'.repeat(40), /entropy/],
    ['a repeated pattern', 'abab'.repeat(10), /entropy/],
  ])('refuses %s as secret', (_what, secret, why) => {
    const r = check(base(secret, randomSecret()));
    expect(r.problems).toEqual([{ key: 'secret', problem: expect.stringMatching(why) }]);
  });

  it('refuses secret == adminToken', () => {
    const s = randomSecret();
    expect(check(base(s, s)).problems).toEqual([{ key: 'adminToken', problem: expect.stringMatching(/same as secret/) }]);
  });

  it('secretFile / adminTokenFile: read when mode 0600 and owned by this user, refused otherwise', () => {
    const secret = randomSecret();
    const token = randomSecret();
    const sf = join(dir, 'secret');
    const tf = join(dir, 'token');
    writeFileSync(sf, `${secret}\n`, { mode: 0o600 });
    writeFileSync(tf, token, { mode: 0o644 });
    chmodSync(tf, 0o644);
    const text = base('x', 'y').replace(/^secret: .*$/m, `secretFile: ${sf}`).replace(/^adminToken: .*$/m, `adminTokenFile: ${tf}`);
    const bad = check(text);
    expect(bad.problems).toEqual([{ key: 'adminTokenFile', problem: expect.stringMatching(/mode 0644.*expected mode 0600/) }]);
    chmodSync(tf, 0o600);
    const ok = check(text);
    expect(ok.problems).toEqual([]);
    expect(ok.config?.secret).toEqual([secret]);
    expect(ok.config?.adminToken).toEqual([token]);
    expect(check(text.replace(`secretFile: ${sf}`, `secretFile: ${sf}\nsecret: ${randomSecret()}`)).problems).toEqual([
      { key: 'secretFile', problem: expect.stringMatching(/together with secret/) },
    ]);
  });

  it('a node without peers is refused unless quorum.allowSingleNode says so (issue 35)', () => {
    const text = base(randomSecret(), randomSecret()).replace(/^peers: .*$/m, '').replace(/^witness: .*$/m, '');
    expect(check(text).problems).toEqual([{ key: 'peers', problem: expect.stringMatching(/allowSingleNode/) }]);
    expect(check(`${text}\nquorum: { allowSingleNode: true }\n`).problems).toEqual([]);
  });

  it('the witness takes no --secret on its command line and refuses a weak key from the environment', async () => {
    const wdir = join(dir, 'w');
    const argv = await run(process.execPath, [cliPath, 'witness', '--listen', '127.0.0.1:0', '--data-dir', wdir, '--secret', randomSecret()], { timeout: 20_000 }).catch((e: { code: number; stderr: string }) => e);
    expect((argv as { code: number }).code).not.toBe(0);
    expect((argv as { stderr: string }).stderr).toMatch(/unknown option '--secret'/);
    const weak = await run(process.execPath, [cliPath, 'witness', '--listen', '127.0.0.1:0', '--data-dir', wdir], { timeout: 20_000, env: { ...process.env, NHA_SECRET: 'change-me' } }).catch(
      (e: { code: number; stderr: string }) => e,
    );
    expect((weak as { code: number }).code).toBe(1);
    expect((weak as { stderr: string }).stderr).toMatch(/witness secret looks like a placeholder/);
  });
});
