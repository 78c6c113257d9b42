import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { clusterConfigSchema } from '../../src/config/schema.js';
import { clusterCrossChecks } from '../../src/config/checks.js';
import { parseConfigText } from '../../src/config/load.js';

const check = (text: string) => parseConfigText(text, clusterConfigSchema, { env: {}, crossChecks: [clusterCrossChecks] });
const SECRET = randomBytes(24).toString('base64url');
const TOKEN = randomBytes(24).toString('base64url');
const withQuarantine = (q: string) => `
node: a
listen: { host: 127.0.0.1, port: 8701 }
secret: ${SECRET}
dataSecret: ${randomBytes(24).toString('base64url')}
adminToken: ${TOKEN}
dataDir: /tmp/x
peers: [ { node: b, urls: [ "http://127.0.0.1:8702" ] } ]
witness: { url: "http://127.0.0.1:8790" }
repo:
  local: { endpoint: "http://127.0.0.1:8888" }
  peer: { endpoint: "http://127.0.0.1:8889" }
${q}
`;

describe('repo.quarantine config', () => {
  it('defaults to merge-back on rejoin and 30 days of retention', () => {
    const r = check(withQuarantine(''));
    expect(r.problems).toEqual([]);
    expect(r.config?.repo?.quarantine).toEqual({ policy: 'merge', keepDays: 30 });
  });

  it('accepts keep and keepDays 0 (never expire)', () => {
    const r = check(withQuarantine('  quarantine: { policy: keep, keepDays: 0 }'));
    expect(r.problems).toEqual([]);
    expect(r.config?.repo?.quarantine).toEqual({ policy: 'keep', keepDays: 0 });
  });

  it.each([
    ['an unknown policy', '  quarantine: { policy: delete }', 'repo.quarantine.policy', /is "delete" \(expected one of "merge", "keep"\)/],
    ['negative keepDays', '  quarantine: { keepDays: -1 }', 'repo.quarantine.keepDays', /expected a value >= 0/],
    ['fractional keepDays', '  quarantine: { keepDays: 1.5 }', 'repo.quarantine.keepDays', /integer/],
    ['keepDays as text', '  quarantine: { keepDays: "30d" }', 'repo.quarantine.keepDays', /wrong type string \(expected number\)/],
    ['an unknown key', '  quarantine: { keepDay: 3 }', 'repo.quarantine.keepDay', /not a known setting/],
  ])('names the key for %s', (_n, q, key, problem) => {
    const r = check(withQuarantine(q));
    expect(r.config).toBeUndefined();
    const p = r.problems.find((x) => x.key === key);
    expect(p, JSON.stringify(r.problems)).toBeDefined();
    expect(p!.problem).toMatch(problem);
  });
});
