import { createHash, createHmac, type Hash, type Hmac } from 'node:crypto';
// The signer @aws-sdk/client-ec2 itself uses (a dependency of it), as an independent reference.
import { SignatureV4 } from '@smithy/signature-v4';
import { describe, expect, it } from 'vitest';
import { signV2, signatureV2, stringToSignV2 } from '../../adapters/nimbus/ec2-sign.js';
import { verifyV2, v2StringToSign } from '../../fixtures/nimbus-vm-service/auth/sigv2.js';
import { parseV4Authorization, v4CanonicalRequest, v4Signature, verifyV4 } from '../../fixtures/nimbus-vm-service/auth/sigv4.js';

// Published AWS example for signature version 2 (Elastic MapReduce DescribeJobFlows).
const V2_VECTOR = {
  secret: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY',
  params: {
    AWSAccessKeyId: 'AKIAIOSFODNN7EXAMPLE',
    Action: 'DescribeJobFlows',
    SignatureMethod: 'HmacSHA256',
    SignatureVersion: '2',
    Timestamp: '2011-10-03T15:19:30',
    Version: '2009-03-31',
  },
  stringToSign:
    'GET\nelasticmapreduce.amazonaws.com\n/\nAWSAccessKeyId=AKIAIOSFODNN7EXAMPLE&Action=DescribeJobFlows&SignatureMethod=HmacSHA256&SignatureVersion=2&Timestamp=2011-10-03T15%3A19%3A30&Version=2009-03-31',
  signature: 'i91nKc4PWAt0JJIdXwz9HxZCJDdiy6cf/Mj6vPxyYIs=',
};

describe('signature version 2 (adapter signer)', () => {
  it('reproduces the published string to sign and signature', () => {
    const sts = stringToSignV2('get', 'ElasticMapReduce.amazonaws.com', '/', V2_VECTOR.params);
    expect(sts).toBe(V2_VECTOR.stringToSign);
    expect(signatureV2(sts, V2_VECTOR.secret, 'HmacSHA256')).toBe(V2_VECTOR.signature);
  });

  it('encodes reserved characters the RFC 3986 way and sorts by byte order', () => {
    const sts = stringToSignV2('POST', 'h:8444', '/', { b: "a b*'~", B: 'x/y', a: 'é' });
    expect(sts).toBe("POST\nh:8444\n/\nB=x%2Fy&a=%C3%A9&b=a%20b%2A%27~");
  });

  it('signs the Host with its port and a second-precision Timestamp', () => {
    const p = signV2({
      endpoint: 'http://127.0.0.1:8444/',
      action: 'DescribeAvailabilityZones',
      credentials: { accessKeyId: 'AK', secretAccessKey: 'SK' },
      timestamp: new Date('2024-01-02T03:04:05.678Z'),
    });
    expect(p.Timestamp).toBe('2024-01-02T03:04:05Z');
    expect(p.Version).toBe('2009-08-15');
    const sts = stringToSignV2('POST', '127.0.0.1:8444', '/', p);
    expect(p.Signature).toBe(signatureV2(sts, 'SK', 'HmacSHA256'));
  });
});

describe('signature version 2 (fixture verifier)', () => {
  const at = Date.parse('2011-10-03T15:19:30Z');
  const request = (params: Record<string, string>) => ({
    method: 'GET',
    host: 'elasticmapreduce.amazonaws.com',
    path: '/',
    params: new Map(Object.entries(params)),
  });

  it('accepts the published vector and computes the same string to sign', () => {
    const r = request({ ...V2_VECTOR.params, Signature: V2_VECTOR.signature });
    expect(v2StringToSign(r)).toBe(V2_VECTOR.stringToSign);
    expect(() => verifyV2(r, V2_VECTOR.secret, at + 60_000)).not.toThrow();
  });

  it('rejects a wrong secret, a tampered parameter and a stale timestamp', () => {
    const r = request({ ...V2_VECTOR.params, Signature: V2_VECTOR.signature });
    expect(() => verifyV2(r, 'wrong', at)).toThrow(expect.objectContaining({ code: 'AuthFailure', status: 401 }));
    const tampered = request({ ...V2_VECTOR.params, Action: 'RunJobFlow', Signature: V2_VECTOR.signature });
    expect(() => verifyV2(tampered, V2_VECTOR.secret, at)).toThrow(expect.objectContaining({ code: 'AuthFailure' }));
    expect(() => verifyV2(r, V2_VECTOR.secret, at + 16 * 60_000)).toThrow(expect.objectContaining({ code: 'RequestExpired' }));
  });

  it('accepts HmacSHA1 signatures made by the adapter signer', () => {
    const now = new Date();
    const p = signV2({
      endpoint: 'http://127.0.0.1:9999/path',
      action: 'DescribeInstances',
      params: { 'InstanceId.1': 'i-1' },
      credentials: { accessKeyId: 'AK', secretAccessKey: 'SK' },
      signatureMethod: 'HmacSHA1',
      method: 'GET',
      timestamp: now,
    });
    const r = { method: 'GET', host: '127.0.0.1:9999', path: '/path', params: new Map(Object.entries(p)) };
    expect(() => verifyV2(r, 'SK', now.getTime())).not.toThrow();
  });
});

// Published AWS example for signature version 4 (IAM ListUsers, GET with the query in the URL).
const V4_VECTOR = {
  secret: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY',
  authorization:
    'AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7',
  request: {
    method: 'GET',
    path: '/',
    query: 'Action=ListUsers&Version=2010-05-08',
    headers: {
      'content-type': 'application/x-www-form-urlencoded; charset=utf-8',
      host: 'iam.amazonaws.com',
      'x-amz-date': '20150830T123600Z',
    },
    body: Buffer.alloc(0),
  },
  canonicalRequestHash: 'f536975d06c0309214f805bb90ccff089219ecd68b2577efef23edd43b7e1a59',
};

function bytes(d: string | ArrayBuffer | ArrayBufferView): string | Buffer {
  if (typeof d === 'string') return d;
  return ArrayBuffer.isView(d) ? Buffer.from(d.buffer, d.byteOffset, d.byteLength) : Buffer.from(d);
}

/** The SDK's checksum interface over node:crypto (HMAC when given a secret). */
class Sha256 {
  private readonly h: Hash | Hmac;
  constructor(secret?: string | ArrayBuffer | ArrayBufferView) {
    this.h = secret === undefined ? createHash('sha256') : createHmac('sha256', bytes(secret));
  }
  update(data: string | ArrayBuffer | ArrayBufferView): void {
    this.h.update(bytes(data));
  }
  async digest(): Promise<Uint8Array> {
    return this.h.digest();
  }
}

describe('signature version 4 (fixture verifier)', () => {
  const at = Date.parse('2015-08-30T12:36:00Z');

  it('reproduces the published canonical request and signature', async () => {
    const auth = parseV4Authorization(V4_VECTOR.authorization);
    const canonical = v4CanonicalRequest(V4_VECTOR.request, auth.signedHeaders);
    expect(createHash('sha256').update(canonical).digest('hex')).toBe(V4_VECTOR.canonicalRequestHash);
    expect(v4Signature(canonical, '20150830T123600Z', auth, V4_VECTOR.secret)).toBe(auth.signature);
    expect(() => verifyV4(V4_VECTOR.request, auth, V4_VECTOR.secret, at)).not.toThrow();
  });

  it('rejects a wrong secret, a changed header and a stale date', () => {
    const auth = parseV4Authorization(V4_VECTOR.authorization);
    expect(() => verifyV4(V4_VECTOR.request, auth, 'wrong', at)).toThrow(expect.objectContaining({ code: 'AuthFailure' }));
    const moved = { ...V4_VECTOR.request, headers: { ...V4_VECTOR.request.headers, host: 'evil.example' } };
    expect(() => verifyV4(moved, auth, V4_VECTOR.secret, at)).toThrow(expect.objectContaining({ code: 'AuthFailure' }));
    expect(() => verifyV4(V4_VECTOR.request, auth, V4_VECTOR.secret, at + 3_600_000)).toThrow(
      expect.objectContaining({ code: 'RequestExpired' }),
    );
  });

  it('accepts what the AWS SDK signer produces for an EC2 form POST', async () => {
    const signer = new SignatureV4({
      credentials: { accessKeyId: 'AK', secretAccessKey: 'SK/+=' },
      region: 'us-east-1',
      service: 'ec2',
      sha256: Sha256,
    });
    const body = 'Action=DescribeInstances&Version=2016-11-15&InstanceId.1=i-12345678&Filter.1.Value.1=a%20b';
    const signed = await signer.sign({
      method: 'POST',
      protocol: 'http:',
      hostname: '127.0.0.1',
      port: 8444,
      path: '/',
      query: {},
      headers: { host: '127.0.0.1:8444', 'content-type': 'application/x-www-form-urlencoded' },
      body,
    });
    const headers = Object.fromEntries(Object.entries(signed.headers).map(([k, v]) => [k.toLowerCase(), v]));
    const auth = parseV4Authorization(headers.authorization);
    const request = { method: 'POST', path: '/', query: '', headers, body: Buffer.from(body) };
    expect(() => verifyV4(request, auth, 'SK/+=', Date.now())).not.toThrow();
    expect(() => verifyV4({ ...request, body: Buffer.from(body + '&x=1') }, auth, 'SK/+=', Date.now())).toThrow(
      expect.objectContaining({ code: 'AuthFailure' }),
    );
  });
});
