import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { clusterConfigSchema } from '../../src/config/schema.js';
import { clusterCrossChecks } from '../../src/config/checks.js';
import { parseConfigText } from '../../src/config/load.js';
import { urlProblem } from '../../src/config/issues.js';
import { listenError, parseListen } from '../../src/cli/listen.js';

const SECRET = randomBytes(24).toString('base64url');
const TOKEN = randomBytes(24).toString('base64url');
const env = { NHA_SECRET: SECRET, NHA_ADMIN_TOKEN: TOKEN };
const check = (body: string, e: NodeJS.ProcessEnv = env) =>
  parseConfigText(`node: a\nlisten: { host: 127.0.0.1, port: 8701 }\nsecret: \${NHA_SECRET}\nadminToken: \${NHA_ADMIN_TOKEN}\ndataDir: /tmp/x\n${body}`, clusterConfigSchema, { env: e, crossChecks: [clusterCrossChecks] }).problems;
const peer = 'peers: [ { node: b, urls: [ "http://127.0.0.1:8702" ] } ]\nwitness: { url: "http://127.0.0.1:8790" }\n';

describe('config error messages: the key, the problem, the expected form, once', () => {
  it('a duplicate peer says duplicate', () => {
    const p = check('peers: [ { node: b, urls: [ "http://127.0.0.1:8702" ] }, { node: b, urls: [ "http://127.0.0.1:8703" ] } ]\nwitness: { url: "http://127.0.0.1:8790" }\n');
    expect(p).toEqual([{ key: 'peers.1', problem: 'duplicate peer: node "b" is also entry 0 (expected each peer once)' }]);
  });

  it('two different peers say a cluster has one peer', () => {
    const p = check('peers: [ { node: b, urls: [ "http://127.0.0.1:8702" ] }, { node: c, urls: [ "http://127.0.0.1:8703" ] } ]\nwitness: { url: "http://127.0.0.1:8790" }\n');
    expect(p).toEqual([{ key: 'peers', problem: 'one peer: nimbus-ha runs active/standby pairs (expected at most 1 entry)' }]);
  });

  it('a peer URL with port 99999 says the port is out of range', () => {
    const p = check('peers: [ { node: b, urls: [ "http://127.0.0.1:99999" ] } ]\nwitness: { url: "http://127.0.0.1:8790" }\n');
    expect(p).toEqual([{ key: 'peers.0.urls.0', problem: 'port 99999 is out of range (expected a URL such as http://10.0.1.2:8700, with a port from 1 to 65535)' }]);
  });

  it('a URL that is no URL says so with the value', () => {
    expect(urlProblem('10.0.1.2:8700')).toBe('"10.0.1.2:8700" is not a valid URL (expected a URL such as http://10.0.1.2:8700)');
    expect(urlProblem('http://:8700')).toBe('"http://:8700" has no host (expected a URL such as http://10.0.1.2:8700)');
  });

  it('a bad CIDR names the value and the expected form', () => {
    const p = check(`${peer}vip: { kind: linux-ip, address: 10.0.1.300/24, interface: eth0 }\n`);
    expect(p).toEqual([{ key: 'vip.address', problem: 'is "10.0.1.300/24" (expected an IPv4 address with prefix length, e.g. 10.0.1.100/24)' }]);
  });

  it('a port out of range names the value and the bound', () => {
    const p = parseConfigText(`node: a\nlisten: { host: 127.0.0.1, port: 99999 }\nsecret: ${SECRET}\nadminToken: ${TOKEN}\ndataDir: /tmp/x\n${peer}`, clusterConfigSchema, { env: {} }).problems;
    expect(p).toEqual([{ key: 'listen.port', problem: 'is 99999 (expected a value <= 65535)' }]);
  });

  it('an unset ${NHA_SECRET} gives one problem per key', () => {
    const p = check(peer, {});
    expect(p.map((x) => x.key)).toEqual(['secret', 'adminToken']);
    expect(p[0].problem).toMatch(/^environment variable NHA_SECRET is not set \(expected a random value of at least 24 characters: export NHA_SECRET=/);
  });

  it('every problem has the form `problem (expected …)`', () => {
    const p = check('peers: [ { node: b, urls: [ "http://127.0.0.1:99999" ] }, { node: b, urls: [ "x" ] } ]\nwitness: { url: "nope" }\nvip: { kind: linux-ip, address: 10.0.1.3, interface: eth0 }\n', {});
    expect(p.length).toBeGreaterThan(3);
    for (const x of p) expect(x.problem, x.key).toMatch(/\(expected .+\)$/);
    expect(new Set(p.map((x) => x.key)).size).toBe(p.length);
  });

  it('a secret value is never echoed', () => {
    const p = check(peer, { NHA_SECRET: 'short', NHA_ADMIN_TOKEN: TOKEN });
    expect(JSON.stringify(p)).not.toContain('"short"');
  });
});

describe('--listen', () => {
  it('accepts host:port and [v6]:port', () => {
    expect(parseListen('--listen', '0.0.0.0:8790')).toEqual({ host: '0.0.0.0', port: 8790 });
    expect(parseListen('--listen', '[::1]:0')).toEqual({ host: '::1', port: 0 });
  });

  it('port 99999, no port, no host: one sentence naming the option', () => {
    expect(() => parseListen('--listen', '127.0.0.1:99999')).toThrow('--listen 127.0.0.1:99999: port 99999 is out of range (expected host:port with a port from 0 to 65535, e.g. 0.0.0.0:8790)');
    expect(() => parseListen('--listen', 'localhost')).toThrow(/--listen localhost: not an address \(expected host:port/);
    expect(() => parseListen('--listen', ':8790')).toThrow(/--listen :8790: no host/);
  });

  it('a bind error becomes a sentence; others pass through', () => {
    const inUse = Object.assign(new Error('listen EADDRINUSE'), { code: 'EADDRINUSE' });
    expect((listenError('--listen', '127.0.0.1:8790', inUse) as Error).message).toBe('--listen 127.0.0.1:8790: the address is already in use (another witness or service listens there; pick another port or stop it)');
    const other = new Error('boom');
    expect(listenError('--listen', 'x:1', other)).toBe(other);
  });
});
