import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';

describe('docs/openapi.yaml', () => {
  const doc = parse(readFileSync(new URL('../../docs/openapi.yaml', import.meta.url), 'utf8'));

  it('is valid YAML describing every route the sidecar serves', () => {
    expect(doc.openapi).toMatch(/^3\./);
    const routes = [
      'get /health', 'head /health', 'get /primary', 'head /primary', 'get /standby', 'head /standby', 'get /status', 'get /metrics', 'get /events', 'get /events/stream', 'get /availability', 'get /ui',
      'post /admin/switchover', 'post /admin/failback', 'post /admin/promote', 'post /admin/maintenance', 'get /admin/keys', 'get /admin/requests/{id}',
      'post /peer/heartbeat', 'post /peer/vote', 'post /peer/takeover',
      'get /peer/db/basebackup', 'post /peer/db/archive/list', 'put /peer/db/archive/{name}', 'post /peer/db/wait-replay',
      'post /peer/repo/sync-now', 'get /peer/files/status', 'post /peer/files/manifest', 'post /peer/files/batch', 'put /peer/files/file',
      'post /peer/db/reclone', 'post /peer/repo/tombstones', 'post /peer/files/merge',
      'post /peer/nimbus-state/manifest', 'put /peer/nimbus-state/file', 'post /peer/nimbus-state/commit', 'post /peer/nimbus-state/posixdata/delete', 'post /peer/nimbus-state/status',
    ];
    const documented = Object.entries(doc.paths as Record<string, Record<string, unknown>>).flatMap(([p, ops]) => Object.keys(ops).map((m) => `${m} ${p}`));
    expect(documented.sort()).toEqual(routes.sort());
  });

  it('every operation has a unique operationId; the open routes say they need no credentials (security: [])', () => {
    const ids: string[] = [];
    for (const [p, ops] of Object.entries(doc.paths as Record<string, Record<string, any>>)) {
      for (const op of Object.values(ops)) {
        expect(op.operationId, p).toMatch(/^[a-z][A-Za-z]+$/);
        ids.push(op.operationId);
        if (!p.startsWith('/admin') && !p.startsWith('/peer')) expect(op.security, p).toEqual([]);
      }
    }
    expect(new Set(ids).size).toBe(ids.length);
  });

  it('admin routes need the bearer token and peer routes the HMAC signature, both answering 401', () => {
    for (const [p, ops] of Object.entries(doc.paths as Record<string, Record<string, any>>)) {
      for (const op of Object.values(ops)) {
        if (p.startsWith('/admin')) expect(op.security).toEqual([{ admin: [] }]);
        if (p.startsWith('/peer')) expect(op.security).toEqual([{ peerHmac: [] }]);
        if (p.startsWith('/admin') || p.startsWith('/peer')) expect(op.responses['401']).toBeDefined();
      }
    }
  });
});
