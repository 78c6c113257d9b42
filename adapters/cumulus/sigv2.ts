/**
 * AWS signature version 2 for the S3 REST API, as Cumulus expects it:
 * `Authorization: AWS <accessKeyId>:<base64 HMAC-SHA1(secret, StringToSign)>`.
 * Used as the SDK client's `signer`, replacing SigV4 for the whole client.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import type { S3ClientConfig } from '@aws-sdk/client-s3';

type SignerOption = NonNullable<S3ClientConfig['signer']>;
type RequestSigner = Extract<SignerOption, { sign: unknown }>;
type SignableRequest = Parameters<RequestSigner['sign']>[0];

/** Query parameters that name a sub-resource or a response override: they are part of the signed resource. */
const SIGNED_QUERY = new Set([
  'acl', 'cors', 'delete', 'lifecycle', 'location', 'logging', 'notification', 'partNumber', 'policy',
  'requestPayment', 'restore', 'tagging', 'torrent', 'uploadId', 'uploads', 'versionId', 'versioning',
  'versions', 'website', 'response-cache-control', 'response-content-disposition',
  'response-content-encoding', 'response-content-language', 'response-content-type', 'response-expires',
]);

/** encodeURIComponent plus the characters RFC 3986 reserves, as S3 canonicalizes resource paths. */
export function encodeRfc3986(s: string): string {
  return encodeURIComponent(s).replace(/[!'()*]/g, (c) => '%' + c.charCodeAt(0).toString(16).toUpperCase());
}

/** decodeURIComponent, or the text as it is when it is not valid percent-encoding. */
export function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

function header(headers: Record<string, string>, name: string): string {
  for (const [k, v] of Object.entries(headers)) if (k.toLowerCase() === name) return v;
  return '';
}

export interface V2Request {
  method: string;
  /** Request path as sent (path-style: /bucket/key), percent-encoded or not. */
  path: string;
  query?: Record<string, string | string[] | null | undefined>;
  headers: Record<string, string>;
}

/**
 * The version 2 string to sign. The Date line is empty when the request carries x-amz-date (which S3 then
 * signs among the x-amz-* headers; the signer below always sends it), else the Date header's value.
 */
export function stringToSignV2(req: V2Request): string {
  const amz = Object.entries(req.headers)
    .map(([k, v]) => [k.toLowerCase(), String(v).trim().replace(/\s+/g, ' ')] as const)
    .filter(([k]) => k.startsWith('x-amz-'))
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([k, v]) => `${k}:${v}`);
  // Re-encode each segment so an already-encoded path and a raw one canonicalize the same way.
  const resource = req.path.split('/').map((seg) => encodeRfc3986(safeDecode(seg))).join('/') || '/';
  const sub = Object.entries(req.query ?? {})
    .filter(([k]) => SIGNED_QUERY.has(k))
    .flatMap(([k, v]) => {
      const values = Array.isArray(v) ? v : [v];
      return values.map((x) => (x === null || x === undefined || x === '' ? k : `${k}=${x}`));
    })
    .sort();
  return [
    req.method.toUpperCase(),
    header(req.headers, 'content-md5'),
    header(req.headers, 'content-type'),
    // x-amz-date replaces the Date line (signed among the x-amz-* headers); else the Date header counts.
    header(req.headers, 'x-amz-date') ? '' : header(req.headers, 'date'),
    ...amz,
    sub.length ? `${resource}?${sub.join('&')}` : resource,
  ].join('\n');
}

export function signV2(stringToSign: string, secretAccessKey: string): string {
  return createHmac('sha1', secretAccessKey).update(stringToSign, 'utf8').digest('base64');
}

/** A request signer for the SDK client that signs every request with signature version 2. */
export class SignatureV2Signer implements RequestSigner {
  constructor(
    private readonly accessKeyId: string,
    private readonly secretAccessKey: string,
  ) {}

  async sign(request: SignableRequest): Promise<SignableRequest> {
    const headers = request.headers;
    for (const k of Object.keys(headers)) {
      const l = k.toLowerCase();
      // Leftovers of SigV4 would be signed as x-amz-* headers yet mean nothing to a v2 server.
      if (l === 'authorization' || l === 'x-amz-date' || l === 'x-amz-content-sha256') delete headers[k];
    }
    // Bucket-level requests go out as /bucket, not /bucket/: servers that canonicalize from parsed
    // routes (s3rver) and servers that sign the raw path then agree on the signed resource.
    if (/^\/[^/]+\/$/.test(request.path)) request.path = request.path.slice(0, -1);
    headers['x-amz-date'] = new Date().toUTCString();
    const sts = stringToSignV2({ method: request.method, path: request.path, query: request.query, headers });
    headers['authorization'] = `AWS ${this.accessKeyId}:${signV2(sts, this.secretAccessKey)}`;
    return request;
  }
}

/** What a v2 verification found: ok, or why not (the request is then refused before its body is read). */
export type V2Verdict = { ok: true; accessKeyId: string } | { ok: false; status: 401 | 403; code: string; message: string };

/**
 * Verify a request's version 2 signature against one key pair. `query` as parsed from the request URL,
 * `headers` lower-cased (Node's IncomingMessage.headers). Constant-time comparison of the signature.
 */
export function verifyV2(
  req: { method: string; path: string; query: Record<string, string | string[] | null | undefined>; headers: Record<string, string | string[] | undefined> },
  key: { accessKeyId: string; secretAccessKey: string },
  opts: { nowMs: number; maxSkewMs: number },
): V2Verdict {
  const flat: Record<string, string> = {};
  for (const [k, v] of Object.entries(req.headers)) if (v !== undefined) flat[k.toLowerCase()] = Array.isArray(v) ? v.join(',') : v;
  const auth = flat['authorization'];
  if (!auth) return { ok: false, status: 403, code: 'AccessDenied', message: 'anonymous requests are refused: sign with the repository credentials (signature version 2)' };
  const m = /^AWS ([^:\s]+):(\S+)$/.exec(auth.trim());
  if (!m) return { ok: false, status: 403, code: 'AccessDenied', message: 'only signature version 2 (Authorization: AWS id:signature) is accepted' };
  const id = m[1]!;
  const sig = m[2]!;
  if (id !== key.accessKeyId) return { ok: false, status: 403, code: 'InvalidAccessKeyId', message: 'unknown access key' };
  const dateText = flat['x-amz-date'] ?? flat['date'];
  const date = dateText ? Date.parse(dateText) : NaN;
  if (!Number.isFinite(date) || Math.abs(opts.nowMs - date) > opts.maxSkewMs) return { ok: false, status: 403, code: 'RequestTimeTooSkewed', message: 'request date missing or too far from the server clock' };
  const want = Buffer.from(signV2(stringToSignV2({ method: req.method, path: req.path, query: req.query, headers: flat }), key.secretAccessKey));
  const got = Buffer.from(sig);
  if (want.length !== got.length || !timingSafeEqual(want, got)) return { ok: false, status: 403, code: 'SignatureDoesNotMatch', message: 'the request signature does not match' };
  return { ok: true, accessKeyId: id };
}
