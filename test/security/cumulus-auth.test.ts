/**
 * Finding 10: the Cumulus stand-in accepted a wrong secret key and unsigned requests. Real stand-ins on
 * loopback (port 0): v2 and v4 signatures are checked against the configured secret, unsigned requests
 * are refused except a GET/HEAD of a public-read object, and what the SDK, the sidecar's probe and the
 * project's v2 signer send is accepted. The signature code is also checked against the examples of
 * AWS's S3 documentation (v2, v4 header, presigned, and the chunked upload's seed and chunk signatures).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import {
  DeleteObjectCommand,
  GetObjectAclCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectAclCommand,
  PutObjectCommand,
  S3Client,
  type S3ClientConfig,
} from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { signV2, stringToSignV2 } from '../../adapters/cumulus/sigv2.js';
import { S3Store } from '../../adapters/cumulus/s3-store.js';
import { AuthFailure, authenticate, signingKeyV4 } from '../../fixtures/cumulus/auth.js';
import { payloadDecoder } from '../../fixtures/cumulus/chunked.js';
import { startCumulus, type CumulusHandle } from '../../fixtures/cumulus/server.js';
import { s3Probe } from '../../src/monitor/probes.js';

const KEY = 'cumulus-auth-key';
const SECRET = 'cumulus-auth-secret-0123456789';
const OTHER_KEY = 'other-cumulus-key';
const OTHER_SECRET = 'other-cumulus-secret-9876543210';

let dir: string;
let cumulus: CumulusHandle;
/** A second stand-in in the same process with its own key pair (s3rver's key registry is per process). */
let other: CumulusHandle;
const clients: S3Client[] = [];

function client(secret = SECRET, extra: Partial<S3ClientConfig> = {}, accessKeyId = KEY): S3Client {
  const c = new S3Client({
    endpoint: cumulus.url,
    region: 'us-east-1',
    forcePathStyle: true,
    maxAttempts: 1,
    credentials: { accessKeyId, secretAccessKey: secret },
    ...extra,
  });
  clients.push(c);
  return c;
}

interface Answer {
  status: number;
  body: string;
}

/** One plain HTTP request (node:http, so Date and every other header go out as given). */
function raw(method: string, path: string, headers: Record<string, string> = {}, body?: Buffer | string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(`${cumulus.url}${path}`, { method, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

const code = (a: Answer) => /<Code>([^<]+)<\/Code>/.exec(a.body)?.[1];

async function failure(p: Promise<unknown>): Promise<{ name: string; status?: number }> {
  try {
    await p;
  } catch (err) {
    return { name: (err as Error).name, status: (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode };
  }
  throw new Error('the request was accepted');
}

/** Whether the key exists, asked with the right credentials. */
async function exists(key: string): Promise<boolean> {
  try {
    await client().send(new HeadObjectCommand({ Bucket: 'Repo', Key: key }));
    return true;
  } catch (err) {
    if ((err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 404) return false;
    throw err;
  }
}

/** A v2 header-signed request as Cumulus clients send it: x-amz-date (the project's signer), or only Date (boto, s3cmd). */
function v2(method: string, path: string, secret: string, opts: { useDate?: boolean; headers?: Record<string, string>; body?: string; accessKeyId?: string } = {}): Promise<Answer> {
  const headers: Record<string, string> = { ...(opts.headers ?? {}) };
  if (opts.useDate) headers['date'] = new Date().toUTCString();
  else headers['x-amz-date'] = new Date().toUTCString();
  const [p, q] = path.split('?') as [string, string | undefined];
  const query = Object.fromEntries(new URLSearchParams(q ?? ''));
  const sts = stringToSignV2({ method, path: p, query, headers });
  headers['authorization'] = `AWS ${opts.accessKeyId ?? KEY}:${signV2(sts, secret)}`;
  return raw(method, path, headers, opts.body);
}

/** A v2 query-string (presigned) URL path. */
function v2Query(method: string, path: string, secret: string, expiresInS = 60): string {
  const expires = Math.floor(Date.now() / 1000) + expiresInS;
  const sig = signV2(`${method}\n\n\n${expires}\n${path}`, secret);
  return `${path}?AWSAccessKeyId=${KEY}&Expires=${expires}&Signature=${encodeURIComponent(sig)}`;
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'nha-cumulus-auth-'));
  cumulus = await startCumulus({ dir: join(dir, 'a'), port: 0, accessKeyId: KEY, secretAccessKey: SECRET });
  other = await startCumulus({ dir: join(dir, 'b'), port: 0, accessKeyId: OTHER_KEY, secretAccessKey: OTHER_SECRET });
  await client().send(new PutObjectCommand({ Bucket: 'Repo', Key: 'VMS/alice/private.img', Body: 'private image' }));
});

afterAll(async () => {
  for (const c of clients) c.destroy();
  await cumulus?.close();
  await other?.close();
  await rm(dir, { recursive: true, force: true });
});

describe('Cumulus stand-in: signatures are checked against the secret (finding 10)', () => {
  it('v4 with a wrong secret: 403 SignatureDoesNotMatch for PUT, GET and LIST; nothing is written', async () => {
    const bad = client('not-the-secret');
    for (const send of [
      () => bad.send(new PutObjectCommand({ Bucket: 'Repo', Key: 'VMS/mallory/v4.img', Body: 'x' })),
      () => bad.send(new GetObjectCommand({ Bucket: 'Repo', Key: 'VMS/alice/private.img' })),
      () => bad.send(new ListObjectsV2Command({ Bucket: 'Repo' })),
    ]) {
      expect(await failure(send())).toEqual({ name: 'SignatureDoesNotMatch', status: 403 });
    }
    expect(await exists('VMS/mallory/v4.img')).toBe(false);
  });

  it('v2 with a wrong secret: 403 SignatureDoesNotMatch (header and query-string forms); the right secret: 200, signed over x-amz-date or Date', async () => {
    const put = await v2('PUT', '/Repo/VMS/mallory/v2.img', 'not-the-secret', { body: 'x', headers: { 'content-type': 'application/octet-stream' } });
    expect([put.status, code(put)]).toEqual([403, 'SignatureDoesNotMatch']);
    const get = await v2('GET', '/Repo/VMS/alice/private.img', 'not-the-secret', { useDate: true });
    expect([get.status, code(get)]).toEqual([403, 'SignatureDoesNotMatch']);
    const list = await raw('GET', v2Query('GET', '/Repo', 'not-the-secret'));
    expect([list.status, code(list)]).toEqual([403, 'SignatureDoesNotMatch']);
    expect(await exists('VMS/mallory/v2.img')).toBe(false);

    expect((await v2('GET', '/Repo/VMS/alice/private.img', SECRET)).body).toBe('private image');
    // Signed over the Date header (no x-amz-date), as S3 defines the string to sign.
    expect((await v2('GET', '/Repo/VMS/alice/private.img', SECRET, { useDate: true })).body).toBe('private image');
    expect((await raw('GET', v2Query('GET', '/Repo/VMS/alice/private.img', SECRET))).body).toBe('private image');
    const expired = await raw('GET', v2Query('GET', '/Repo/VMS/alice/private.img', SECRET, -60));
    expect([expired.status, code(expired)]).toEqual([403, 'AccessDenied']);
  });

  it("a key pair is good only on its own stand-in: another stand-in's key is InvalidAccessKeyId (v2 and v4)", async () => {
    const v4 = await failure(client(OTHER_SECRET, {}, OTHER_KEY).send(new GetObjectCommand({ Bucket: 'Repo', Key: 'VMS/alice/private.img' })));
    expect(v4).toEqual({ name: 'InvalidAccessKeyId', status: 403 });
    const a = await v2('GET', '/Repo/VMS/alice/private.img', OTHER_SECRET, { accessKeyId: OTHER_KEY });
    expect([a.status, code(a)]).toEqual([403, 'InvalidAccessKeyId']);
    const unknown = await v2('GET', '/Repo/VMS/alice/private.img', SECRET, { accessKeyId: 'S3RVER' });
    expect([unknown.status, code(unknown)]).toEqual([403, 'InvalidAccessKeyId']);
  });

  it('unsigned PUT, GET, LIST, HEAD and DELETE: 403 AccessDenied; nothing is written or deleted', async () => {
    const put = await raw('PUT', '/Repo/VMS/mallory/anon.img', { 'content-type': 'application/octet-stream' }, 'x');
    expect([put.status, code(put)]).toEqual([403, 'AccessDenied']);
    const get = await raw('GET', '/Repo/VMS/alice/private.img');
    expect([get.status, code(get)]).toEqual([403, 'AccessDenied']);
    expect(get.body).not.toContain('private image');
    for (const path of ['/Repo', '/Repo/', '/Repo?list-type=2', '/']) {
      const list = await raw('GET', path);
      expect([path, list.status, code(list)]).toEqual([path, 403, 'AccessDenied']);
      expect(list.body).not.toContain('VMS/alice');
    }
    expect((await raw('HEAD', '/Repo/VMS/alice/private.img')).status).toBe(403);
    const del = await raw('DELETE', '/Repo/VMS/alice/private.img');
    expect([del.status, code(del)]).toEqual([403, 'AccessDenied']);
    expect(await exists('VMS/mallory/anon.img')).toBe(false);
    expect(await exists('VMS/alice/private.img')).toBe(true);
    // A missing object answers as a private one: an anonymous caller learns nothing.
    const missing = await raw('GET', '/Repo/VMS/alice/no-such.img');
    expect([missing.status, code(missing)]).toEqual([403, 'AccessDenied']);
  });

  it('an unsigned GET/HEAD of a public-read object: 200; its ACL answers AllUsers READ; made private again it is 403', async () => {
    const s3 = client();
    await s3.send(new PutObjectCommand({ Bucket: 'Repo', Key: 'VMS/common/public.img', Body: 'public image', ACL: 'public-read' }));
    const get = await raw('GET', '/Repo/VMS/common/public.img');
    expect([get.status, get.body]).toEqual([200, 'public image']);
    expect((await raw('HEAD', '/Repo/VMS/common/public.img')).status).toBe(200);
    // Sub-resources stay signed-only even on a public object.
    expect((await raw('GET', '/Repo/VMS/common/public.img?acl')).status).toBe(403);
    expect((await raw('PUT', '/Repo/VMS/common/public.img', {}, 'overwritten')).status).toBe(403);

    const acl = await s3.send(new GetObjectAclCommand({ Bucket: 'Repo', Key: 'VMS/common/public.img' }));
    expect(acl.Grants?.some((g) => g.Grantee?.URI === 'http://acs.amazonaws.com/groups/global/AllUsers' && g.Permission === 'READ')).toBe(true);
    await s3.send(new PutObjectAclCommand({ Bucket: 'Repo', Key: 'VMS/common/public.img', ACL: 'private' }));
    const after = await raw('GET', '/Repo/VMS/common/public.img');
    expect([after.status, code(after)]).toEqual([403, 'AccessDenied']);
    // An overwrite without x-amz-acl is private, as in S3.
    await s3.send(new PutObjectAclCommand({ Bucket: 'Repo', Key: 'VMS/common/public.img', ACL: 'public-read' }));
    expect((await raw('GET', '/Repo/VMS/common/public.img')).status).toBe(200);
    await s3.send(new PutObjectCommand({ Bucket: 'Repo', Key: 'VMS/common/public.img', Body: 'public image v2' }));
    expect((await raw('GET', '/Repo/VMS/common/public.img')).status).toBe(403);
  });

  it('correctly signed requests through @aws-sdk/client-s3 (v4): 200, and bodies sent aws-chunked are stored decoded', async () => {
    const s3 = client();
    const body = Buffer.alloc(300_000, 'nimbus');
    const put = await s3.send(new PutObjectCommand({ Bucket: 'Repo', Key: 'VMS/alice/sdk.img', Body: body }));
    expect(put.$metadata.httpStatusCode).toBe(200);
    // The SDK's default for a stream of known length: aws-chunked with a CRC32 trailer (STREAMING-UNSIGNED-PAYLOAD-TRAILER).
    const seen: string[] = [];
    const chunked = client(SECRET, { requestChecksumCalculation: 'WHEN_SUPPORTED' });
    chunked.middlewareStack.add(
      (next) => async (args) => {
        seen.push(String((args.request as { headers: Record<string, string> }).headers['x-amz-content-sha256']));
        return next(args);
      },
      { step: 'finalizeRequest', priority: 'low' },
    );
    await chunked.send(new PutObjectCommand({ Bucket: 'Repo', Key: 'VMS/alice/chunked.img', Body: Readable.from([body.subarray(0, 100_000), body.subarray(100_000)]), ContentLength: body.length }));
    expect(seen).toContain('STREAMING-UNSIGNED-PAYLOAD-TRAILER');
    for (const key of ['VMS/alice/sdk.img', 'VMS/alice/chunked.img']) {
      const got = await s3.send(new GetObjectCommand({ Bucket: 'Repo', Key: key }));
      expect(got.$metadata.httpStatusCode).toBe(200);
      expect(got.ContentEncoding).toBeUndefined();
      expect(Buffer.from(await got.Body!.transformToByteArray()).equals(body)).toBe(true);
    }
    const head = await s3.send(new HeadObjectCommand({ Bucket: 'Repo', Key: 'VMS/alice/sdk.img' }));
    expect(head.ContentLength).toBe(body.length);
    const list = await s3.send(new ListObjectsV2Command({ Bucket: 'Repo', Prefix: 'VMS/alice/' }));
    expect(list.Contents?.map((o) => o.Key)).toEqual(['VMS/alice/chunked.img', 'VMS/alice/private.img', 'VMS/alice/sdk.img']);
    expect((await s3.send(new DeleteObjectCommand({ Bucket: 'Repo', Key: 'VMS/alice/chunked.img' }))).$metadata.httpStatusCode).toBe(204);
  });

  it('v4: a body that does not match its signed x-amz-content-sha256 is refused (400 XAmzContentSHA256Mismatch) and not stored', async () => {
    const s3 = client();
    // Swap the body after signing: the signature still matches the headers, the payload hash does not.
    s3.middlewareStack.add(
      (next) => async (args) => {
        (args.request as { body: unknown }).body = Buffer.from('tampered body!');
        return next(args);
      },
      { step: 'finalizeRequest', priority: 'low' },
    );
    expect(await failure(s3.send(new PutObjectCommand({ Bucket: 'Repo', Key: 'VMS/alice/swapped.img', Body: Buffer.from('original body!') })))).toEqual({
      name: 'XAmzContentSHA256Mismatch',
      status: 400,
    });
    expect(await exists('VMS/alice/swapped.img')).toBe(false);
  });

  it("the project's clients: the sidecar's S3 probe and S3Store (v2) pass with the key pair and fail with a wrong secret", async () => {
    const probe = (secret: string) => s3Probe({ endpoint: cumulus.url, bucket: 'Repo', accessKeyId: KEY, secretAccessKey: secret })(5_000);
    expect((await probe(SECRET)).ok).toBe(true);
    const refusedProbe = await probe('not-the-secret');
    expect(refusedProbe.ok).toBe(false);
    expect(refusedProbe.detail).toMatch(/403/);
    const store = (secret: string) => new S3Store({ endpoint: cumulus.url, bucket: 'Repo', accessKeyId: KEY, secretAccessKey: secret, signatureVersion: 'v2', multipart: false });
    const keysOf = async (s: S3Store) => {
      const out: string[] = [];
      for await (const o of s.list('VMS/alice/')) out.push(o.key);
      return out;
    };
    const good = store(SECRET);
    const bytes = Buffer.from('via S3Store v2');
    await good.put('VMS/alice/v2-store.img', Readable.from([bytes]), bytes.length);
    expect(await keysOf(good)).toContain('VMS/alice/v2-store.img');
    const bad = store('not-the-secret');
    await expect(keysOf(bad)).rejects.toThrow(/SignatureDoesNotMatch|refused the credentials/);
    good.close();
    bad.close();
  });
});

describe('Cumulus stand-in signature code against the examples of the S3 documentation', () => {
  const ID = 'AKIAIOSFODNN7EXAMPLE';
  const keys = new Map([[ID, 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY']]);
  const at = Date.UTC(2013, 4, 24);
  const refused = (f: () => unknown): string => {
    try {
      f();
    } catch (err) {
      if (err instanceof AuthFailure) return err.code;
      throw err;
    }
    return 'accepted';
  };

  it('v2: header (GET /photos/puppy.jpg) and query string', () => {
    const req = {
      method: 'GET',
      url: '/johnsmith/photos/puppy.jpg',
      rawHeaders: ['Host', 'johnsmith.s3.amazonaws.com', 'Date', 'Tue, 27 Mar 2007 19:36:42 +0000', 'Authorization', `AWS ${ID}:bWq2s1WEIj+Ydj0vQ697zp+IXMU=`],
    };
    expect(authenticate(req, keys, Date.UTC(2007, 2, 27, 19, 36, 42))).toMatchObject({ kind: 'signed', version: 2, accessKeyId: ID });
    expect(refused(() => authenticate(req, new Map([[ID, 'wrong']]), Date.UTC(2007, 2, 27, 19, 36, 42)))).toBe('SignatureDoesNotMatch');
    expect(refused(() => authenticate(req, keys, Date.UTC(2007, 2, 27, 20, 0, 0)))).toBe('RequestTimeTooSkewed');
    const query = { method: 'GET', url: `/johnsmith/photos/puppy.jpg?AWSAccessKeyId=${ID}&Signature=NpgCjnDzrM%2BWFzoENXmpNDUsSn8%3D&Expires=1175139620`, rawHeaders: ['Host', 'johnsmith.s3.amazonaws.com'] };
    expect(authenticate(query, keys, 1175139000_000)).toMatchObject({ kind: 'signed', version: 2 });
    expect(refused(() => authenticate(query, keys, 1175139621_000))).toBe('AccessDenied');
  });

  it('v4: Authorization header (GET /test.txt with Range) and presigned URL', () => {
    const req = {
      method: 'GET',
      url: '/test.txt',
      rawHeaders: [
        'Host', 'examplebucket.s3.amazonaws.com', 'Range', 'bytes=0-9',
        'x-amz-content-sha256', 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855', 'x-amz-date', '20130524T000000Z',
        'Authorization', `AWS4-HMAC-SHA256 Credential=${ID}/20130524/us-east-1/s3/aws4_request,SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41`,
      ],
    };
    expect(authenticate(req, keys, at)).toMatchObject({ kind: 'signed', version: 4, accessKeyId: ID });
    expect(refused(() => authenticate({ ...req, rawHeaders: req.rawHeaders.map((v) => (v === 'bytes=0-9' ? 'bytes=0-99' : v)) }, keys, at))).toBe('SignatureDoesNotMatch');
    expect(refused(() => authenticate(req, new Map([[ID, 'wrong']]), at))).toBe('SignatureDoesNotMatch');
    expect(refused(() => authenticate(req, new Map([['someone-else', 'x']]), at))).toBe('InvalidAccessKeyId');
    const unsignedAcl = { ...req, rawHeaders: [...req.rawHeaders, 'x-amz-acl', 'public-read'] };
    expect(refused(() => authenticate(unsignedAcl, keys, at))).toBe('AccessDenied');

    const presigned = {
      method: 'GET',
      url: `/test.txt?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=${ID}%2F20130524%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404`,
      rawHeaders: ['Host', 'examplebucket.s3.amazonaws.com'],
    };
    expect(authenticate(presigned, keys, at + 3_600_000)).toMatchObject({ kind: 'signed', version: 4, payload: { kind: 'unsigned' } });
    expect(refused(() => authenticate(presigned, keys, at + 86_401_000))).toBe('AccessDenied');
    expect(refused(() => authenticate({ ...presigned, url: presigned.url.replace('86400', '86401') }, keys, at))).toBe('SignatureDoesNotMatch');
  });

  it('v4 streaming upload (STREAMING-AWS4-HMAC-SHA256-PAYLOAD): the seed signature, then every chunk signature', async () => {
    const req = {
      method: 'PUT',
      url: '/examplebucket/chunkObject.txt',
      rawHeaders: [
        'Host', 's3.amazonaws.com', 'x-amz-date', '20130524T000000Z', 'x-amz-storage-class', 'REDUCED_REDUNDANCY',
        'Authorization', `AWS4-HMAC-SHA256 Credential=${ID}/20130524/us-east-1/s3/aws4_request,SignedHeaders=content-encoding;content-length;host;x-amz-content-sha256;x-amz-date;x-amz-decoded-content-length;x-amz-storage-class,Signature=4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9`,
        'x-amz-content-sha256', 'STREAMING-AWS4-HMAC-SHA256-PAYLOAD', 'Content-Encoding', 'aws-chunked',
        'x-amz-decoded-content-length', '66560', 'Content-Length', '66824',
      ],
    };
    const result = authenticate(req, keys, at);
    expect(result).toMatchObject({ kind: 'signed', version: 4, payload: { kind: 'streaming', seedSignature: '4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9' } });
    const claim = result.kind === 'signed' ? result.payload : undefined;
    expect(claim?.kind === 'streaming' && claim.signingKey.equals(signingKeyV4('wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY', '20130524', 'us-east-1', 's3'))).toBe(true);

    const body = (lastChunk: Buffer) =>
      Buffer.concat([
        Buffer.from('10000;chunk-signature=ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648\r\n'),
        Buffer.alloc(65536, 'a'),
        Buffer.from('\r\n400;chunk-signature=0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497\r\n'),
        lastChunk,
        Buffer.from('\r\n0;chunk-signature=b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9\r\n\r\n'),
      ]);
    const decode = async (b: Buffer): Promise<Buffer | string> => {
      const out: Buffer[] = [];
      try {
        for await (const c of Readable.from([b.subarray(0, 1000), b.subarray(1000, 66000), b.subarray(66000)]).pipe(payloadDecoder(claim))) out.push(c as Buffer);
      } catch (err) {
        return (err as { code: string }).code;
      }
      return Buffer.concat(out);
    };
    const good = await decode(body(Buffer.alloc(1024, 'a')));
    expect(Buffer.isBuffer(good) && good.equals(Buffer.alloc(66560, 'a'))).toBe(true);
    expect(await decode(body(Buffer.alloc(1024, 'b')))).toBe('SignatureDoesNotMatch');
    expect(await decode(body(Buffer.alloc(1024, 'a')).subarray(0, 66000))).toBe('IncompleteBody');
  });
});
