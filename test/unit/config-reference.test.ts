import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { clusterConfigSchema } from '../../src/config/schema.js';
import { CONFIG_REFERENCE_INTRO } from '../../src/config/example.js';
import { configReferenceMarkdown, describeSchema } from '../../src/config/reference.js';

describe('configuration reference', () => {
  const md = configReferenceMarkdown(clusterConfigSchema, CONFIG_REFERENCE_INTRO);

  it('docs/configuration.md is the generated reference (run `nimbus-ha config reference > docs/configuration.md`)', () => {
    expect(readFileSync(new URL('../../docs/configuration.md', import.meta.url), 'utf8')).toBe(md);
  });

  it('documents nested and per-kind settings with defaults', () => {
    expect(md).toContain('| `timings.profile` | "fast" \\| "frugal" \\| "lan" | `"fast"` |');
    expect(md).toMatch(/\| `timings\.leaseMs` \| number \| \(optional\) \| .*700 \(fast\), 3500 \(frugal\), 140 \(lan\)/);
    expect(md).toMatch(/\| `timings\.requestTimeoutMs` \| number \| \(optional\) \| .*400 \(fast\), 400 \(frugal\), 80 \(lan\)/);
    expect(md).toContain('`vip (kind bind-proxy).listen.port`');
    expect(md).toContain('`db.sync`');
    expect(md).toContain('`repo.local.endpoint`');
    expect(md).toContain('`files.trees[].path`');
    expect(md).toContain('`services[].probe (kind http).url`');
  });

  it('every leaf setting has a description', () => {
    const undocumented = describeSchema(clusterConfigSchema.shape.timings, 'timings').filter((d) => !d.description);
    expect(undocumented).toEqual([]);
  });
});
