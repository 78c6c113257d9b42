import { readFileSync, readdirSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { TIMING_PROFILES } from '../../src/config/schema.js';

const root = new URL('../../', import.meta.url);
const docs = ['README.md', ...readdirSync(new URL('docs/', root)).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];
const text = (f: string) => readFileSync(new URL(f, root), 'utf8');

describe('defaults quoted in the docs match the schema', () => {
  it('every "heartbeat / dead-after / lease" triple of a profile is one of the profiles', () => {
    const triples = new Set(Object.values(TIMING_PROFILES).map((p) => `${p.heartbeatMs} / ${p.deadAfterMs} / ${p.leaseMs}`));
    for (const f of docs) {
      for (const m of text(f).matchAll(/\b(fast|frugal|default)\b[^\n]{0,80}?(\d+ \/ \d+ \/ \d+)/g)) {
        expect(triples, `${f}: "${m[0]}"`).toContain(m[2]);
      }
    }
  });

  it('"the defaults (lease N ms)" and similar name the fast profile\'s lease', () => {
    for (const f of docs) {
      for (const m of text(f).matchAll(/defaults? \(lease (\d+) ms\)/g)) {
        expect(Number(m[1]), `${f}: "${m[0]}"`).toBe(TIMING_PROFILES.fast.leaseMs);
      }
    }
  });
});
