import { describe, expect, it } from 'vitest';
import { MAX_MULTI_DELETE_BYTES, deletedKeys, requestedDeleteKeys, xmlText } from '../../adapters/cumulus/multi-delete.js';

const request = (keys: string[], quiet = false) =>
  `<?xml version="1.0" encoding="UTF-8"?>\n<Delete xmlns="http://s3.amazonaws.com/doc/2006-03-01/">${quiet ? '<Quiet>true</Quiet>' : ''}${keys
    .map((k) => `<Object><Key>${k}</Key><VersionId>null</VersionId></Object>`)
    .join('')}</Delete>`;

describe('multi-object delete keys', () => {
  it.each([
    ['plain', 'VMS/u1/a.qcow2', 'VMS/u1/a.qcow2'],
    ['named entities', 'a&amp;b &lt;c&gt; &quot;d&quot; &apos;e&apos;', `a&b <c> "d" 'e'`],
    ['character references', 'caf&#233; &#x1F600;', 'café 😀'],
    ['CDATA', '<![CDATA[x<&>y]]>-z&amp;', 'x<&>y-z&'],
    ['an unknown entity is left as it is', 'a&nbsp;b', 'a&nbsp;b'],
  ])('%s', (_name, raw, text) => {
    expect(xmlText(raw)).toBe(text);
    expect(requestedDeleteKeys(request([raw]))).toEqual([text]);
  });

  it('the removed keys are those requested minus the errors, whether or not the answer lists successes', () => {
    const req = request(['a', 'b&amp;c', 'd', 'a']);
    const verbose = '<DeleteResult><Deleted><Key>a</Key></Deleted><Deleted><Key>b&amp;c</Key></Deleted><Error><Key>d</Key><Code>AccessDenied</Code></Error></DeleteResult>';
    const quiet = '<DeleteResult><Error><Key>d</Key><Code>AccessDenied</Code></Error></DeleteResult>';
    expect(deletedKeys(req, verbose)).toEqual(['a', 'b&c']);
    expect(deletedKeys(request(['a', 'b&amp;c', 'd'], true), quiet)).toEqual(['a', 'b&c']);
    expect(deletedKeys(req, '<DeleteResult/>')).toEqual(['a', 'b&c', 'd']);
    expect(deletedKeys('not xml', '')).toEqual([]);
  });

  it('the size bound holds 1,000 keys of the longest S3 allows, escaped', () => {
    const longest = 'k'.repeat(1024);
    expect(Buffer.byteLength(request(Array(1000).fill(longest)))).toBeLessThan(MAX_MULTI_DELETE_BYTES);
  });
});
