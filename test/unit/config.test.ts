import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { EXAMPLE_CONFIG } from '../../src/config/example.js';
import { probePeriods } from '../../src/cli/services.js';
import { check, DATA, nodeConfigText, SECRET, TOKEN } from '../helpers/config-text.js';

const valid = nodeConfigText('witness: { url: "http://127.0.0.1:8790" }');

describe('config', () => {
  it('the example config is valid', () => {
    const r = check(EXAMPLE_CONFIG, { NHA_SECRET: SECRET, NHA_ADMIN_TOKEN: TOKEN, NHA_DATA_SECRET: DATA });
    expect(r.problems).toEqual([]);
    expect(r.config?.node).toBe('a');
  });

  it('applies defaults and freezes the result', () => {
    const r = check(valid);
    expect(r.config?.timings).toEqual({ profile: 'fast', heartbeatMs: 100, deadAfterMs: 500, leaseMs: 700, probeMs: 2000, requestTimeoutMs: 400, handoverTimeoutMs: 30000, handoverDrainMs: 0, plannedHoldDownMs: 10000 });
    expect(r.config?.vip).toEqual({ kind: 'none' });
    expect(Object.isFrozen(r.config)).toBe(true);
    expect(Object.isFrozen(r.config?.timings)).toBe(true);
  });

  it('reports every problem at once as key: problem (expected ...)', () => {
    const r = check(`
node: "a b"
listen: { host: 127.0.0.1, port: 99999 }
secret: short
dataDir: /tmp/x
peers: [ { node: b, urls: [ "not a url" ] } ]
witness: { url: "http://127.0.0.1:8790" }
timings: { heartbeatMs: 100, deadAfterMs: 150, leaseMs: 700, bogus: 1 }
vip: { kind: floating }
`);
    const keys = r.problems.map((p) => p.key);
    expect(r.config).toBeUndefined();
    expect(keys).toEqual(expect.arrayContaining(['node', 'listen.port', 'secret', 'adminToken', 'peers.0.urls.0', 'timings.bogus', 'vip.kind']));
    for (const p of r.problems) expect(p.problem).toMatch(/\(expected .+\)$/);
    expect(r.problems.find((p) => p.key === 'adminToken')?.problem).toMatch(/^is not set \(expected \$\{NHA_ADMIN_TOKEN\}/);
    expect(r.problems.find((p) => p.key === 'vip.kind')?.problem).toContain('"bind-proxy"');
  });

  it('cross-field rules: deadAfter > 2 heartbeats, lease > deadAfter, witness or explicit two-node choice', () => {
    const r = check(valid.replace('witness: { url: "http://127.0.0.1:8790" }', 'timings: { heartbeatMs: 100, deadAfterMs: 200, leaseMs: 150 }'));
    expect(r.problems.map((p) => p.key).sort()).toEqual(['timings.deadAfterMs', 'timings.leaseMs', 'witness']);
    // A request timeout set explicitly at or above the lease is refused; one left to the profile follows a short lease.
    const t = (x: string) => check(`${valid}timings: ${x}\n`);
    expect(t('{ leaseMs: 600, requestTimeoutMs: 600 }').problems.map((p) => p.key)).toEqual(['timings.requestTimeoutMs']);
    expect(t('{ heartbeatMs: 50, deadAfterMs: 250, leaseMs: 350 }').config?.timings.requestTimeoutMs).toBe(210);
    expect(t('{ heartbeatMs: 50, deadAfterMs: 250, leaseMs: 450 }').config?.timings.requestTimeoutMs).toBe(400);
    const ok = check(valid.replace('witness: { url: "http://127.0.0.1:8790" }', 'quorum: { allowTwoNodeWithoutWitness: true }'));
    expect(ok.problems).toEqual([]);
  });

  it('timings.profile fills heartbeat, dead-after, lease and probe period; explicit fields win one by one', () => {
    const withTimings = (t: string) => check(`${valid}timings: ${t}\n`);
    expect(withTimings('{ profile: frugal }').config?.timings).toEqual({
      profile: 'frugal',
      heartbeatMs: 1000,
      deadAfterMs: 3000,
      leaseMs: 3500,
      probeMs: 5000,
      requestTimeoutMs: 400,
      handoverTimeoutMs: 30000,
      handoverDrainMs: 0,
      plannedHoldDownMs: 10000,
    });
    expect(withTimings('{ profile: frugal, deadAfterMs: 2500 }').config?.timings).toMatchObject({ heartbeatMs: 1000, deadAfterMs: 2500, leaseMs: 3500 });
    expect(withTimings('{ profile: frugal, probeMs: 3000 }').config?.timings).toMatchObject({ heartbeatMs: 1000, probeMs: 3000 });
    expect(withTimings('{ heartbeatMs: 50 }').config?.timings).toMatchObject({ profile: 'fast', heartbeatMs: 50, deadAfterMs: 500, leaseMs: 700 });
    // The cross-field rules see the merged values: a lease below the profile's dead-after is refused.
    expect(withTimings('{ profile: frugal, leaseMs: 2000 }').problems.map((p) => p.key)).toEqual(['timings.leaseMs']);
    expect(withTimings('{ handoverDrainMs: 1500 }').config?.timings.handoverDrainMs).toBe(1500);
    for (const v of ['-1', '60001', '1.5']) {
      expect(withTimings(`{ handoverDrainMs: ${v} }`).problems.map((p) => p.key)).toEqual(['timings.handoverDrainMs']);
    }
    // lan: two nodes on one switch; its request timeout comes with it and stays below its lease.
    expect(withTimings('{ profile: lan }').config?.timings).toMatchObject({ profile: 'lan', heartbeatMs: 20, deadAfterMs: 100, leaseMs: 140, probeMs: 2000, requestTimeoutMs: 80 });
    expect(withTimings('{ profile: lan }').problems).toEqual([]);
    expect(withTimings('{ profile: lan, requestTimeoutMs: 100 }').config?.timings.requestTimeoutMs).toBe(100);
    const bad = withTimings('{ profile: slow }');
    expect(bad.config).toBeUndefined();
    expect(bad.problems).toEqual([{ key: 'timings.profile', problem: expect.stringMatching(/"fast".*"frugal".*"lan"/) }]);
  });

  it('a service without its own probe period gets the timing profile\'s; one that sets it keeps it', () => {
    const svc = (extra: string) => `services:\n  - { name: web, probe: { kind: tcp, host: 127.0.0.1, port: 80 }${extra} }\n  - { name: api, intervalMs: 700, probe: { kind: tcp, host: 127.0.0.1, port: 81 } }\n`;
    const nimbus = (monitor: string) => `nimbus: { mode: process, home: /tmp/n, command: [ "true" ], ec2: { url: "http://127.0.0.1:8444/", credentials: { accessKeyId: probe, secretAccessKey: probe-secret } }${monitor} }\n`;
    const periods = (text: string) => {
      const r = check(valid + text);
      expect(r.problems).toEqual([]);
      const p = probePeriods(r.config!);
      return [p.services.map((s) => s.intervalMs), p.nimbusMs];
    };
    expect(periods(svc('') + nimbus(''))).toEqual([[2000, 700], 2000]);
    expect(periods(`timings: { profile: frugal }\n${svc('') + nimbus('')}`)).toEqual([[5000, 700], 5000]);
    expect(periods(`timings: { profile: frugal, probeMs: 4000 }\n${svc(', intervalMs: 1500') + nimbus(', monitor: { intervalMs: 2500 }')}`)).toEqual([[1500, 700], 2500]);
  });

  it('rejects unknown keys at any depth', () => {
    const r = check(valid + 'colour: blue\n');
    expect(r.problems).toEqual([{ key: 'colour', problem: expect.stringContaining('is not a known setting') }]);
  });

  it('interpolates the environment and lets NHA_SECRET / NHA_ADMIN_TOKEN override', () => {
    const text = valid.replace(`secret: ${SECRET}`, 'secret: ${MY_SECRET}');
    expect(check(text).problems[0]).toEqual({ key: 'secret', problem: expect.stringContaining('MY_SECRET is not set') });
    const fromEnv = randomBytes(24).toString('base64url');
    expect(check(text, { MY_SECRET: fromEnv }).config?.secret).toEqual([fromEnv]);
    const override = randomBytes(24).toString('base64url');
    expect(check(valid, { NHA_ADMIN_TOKEN: override }).config?.adminToken).toEqual([override]);
  });

  it('refuses a non-mapping or invalid YAML with a clear problem', () => {
    expect(check('- a\n- b').problems[0].key).toBe('(root)');
    expect(check('node: [unclosed').problems[0].problem).toMatch(/^is not valid YAML/);
  });

  it('the example stays parseable as plain YAML with comments', () => {
    expect(parse(EXAMPLE_CONFIG).vip.kind).toBe('bind-proxy');
  });
});
