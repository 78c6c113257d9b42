import { describe, expect, it } from 'vitest';
import { cannedFromGrants } from '../../adapters/cumulus/s3-store.js';

const ALL = 'http://acs.amazonaws.com/groups/global/AllUsers';
const AUTH = 'http://acs.amazonaws.com/groups/global/AuthenticatedUsers';
const owner = { uri: '', permission: 'FULL_CONTROL' };

describe('cannedFromGrants', () => {
  const rows: Array<[string, Array<{ uri: string; permission: string }>, string]> = [
    ['owner only', [owner], 'private'],
    ['no grants at all', [], 'private'],
    ['everyone reads', [owner, { uri: ALL, permission: 'READ' }], 'public-read'],
    ['everyone reads and writes', [owner, { uri: ALL, permission: 'READ' }, { uri: ALL, permission: 'WRITE' }], 'public-read-write'],
    ['everyone has full control', [owner, { uri: ALL, permission: 'FULL_CONTROL' }], 'public-read-write'],
    ['signed-in users read', [owner, { uri: AUTH, permission: 'READ' }], 'authenticated-read'],
    ['everyone may read the ACL only', [owner, { uri: ALL, permission: 'READ_ACP' }], 'private'],
  ];
  it.each(rows)('%s', (_name, grants, want) => {
    expect(cannedFromGrants(grants)).toBe(want);
  });
});
