import { describe, expect, it } from 'vitest';
import { maskRepoUrl, parseRepoUrl } from '../../src/cli/repo.js';

describe('parseRepoUrl', () => {
  it.each([
    ['s3://AK:SK@127.0.0.1:9000/Repo', { endpoint: 'http://127.0.0.1:9000', bucket: 'Repo', accessKeyId: 'AK', secretAccessKey: 'SK', signatureVersion: 'v4', multipart: true }],
    ['s3://AK:S%2FK%40x@h:1/Repo?signature=v2&multipart=false', { secretAccessKey: 'S/K@x', signatureVersion: 'v2', multipart: false }],
    ['s3+https://AK:SK@s3.example.org/images', { endpoint: 'https://s3.example.org', bucket: 'images' }],
  ])('%s', (url, want) => {
    expect(parseRepoUrl(url)).toMatchObject(want);
  });

  it.each([
    ['not a url', /not a repository URL/],
    ['http://h:1/Repo', /unsupported scheme/],
    ['s3://h:1/', /exactly one bucket/],
    ['s3://h:1/a/b', /exactly one bucket/],
    ['s3://h:1/Repo?signature=v3', /v2 or v4/],
  ])('rejects %s', (url, msg) => {
    expect(() => parseRepoUrl(url)).toThrow(msg);
  });

  it('leaves credentials to the SDK chain when the URL has none', () => {
    expect(parseRepoUrl('s3://h:1/Repo')).not.toHaveProperty('accessKeyId');
  });

  it('masks the secret', () => {
    expect(maskRepoUrl('s3://AK:SK@h:1/Repo')).toBe('s3://AK:***@h:1/Repo');
  });
});
