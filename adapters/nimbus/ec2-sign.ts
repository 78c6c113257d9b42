/**
 * AWS signature version 2 for EC2 Query requests, as Nimbus' own clients sign them. Used by the probe;
 * kept free of I/O so it can be checked against published vectors.
 */
import { createHmac } from 'node:crypto';

export type V2SignatureMethod = 'HmacSHA256' | 'HmacSHA1';

export const NIMBUS_EC2_API_VERSION = '2009-08-15';

export interface Ec2Credentials {
  accessKeyId: string;
  secretAccessKey: string;
}

/** RFC 3986 encoding (unreserved characters kept), as the v2 canonical query requires. */
export function rfc3986(s: string): string {
  return encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

/** Sorted, encoded `k=v&...` of all parameters except Signature. */
export function canonicalQueryV2(params: Readonly<Record<string, string>>): string {
  return Object.keys(params)
    .filter((k) => k !== 'Signature')
    .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))
    .map((k) => `${rfc3986(k)}=${rfc3986(params[k])}`)
    .join('&');
}

/** `METHOD\nhost\npath\ncanonical-query`; host is lower-case and carries the port when not the default. */
export function stringToSignV2(method: string, host: string, path: string, params: Readonly<Record<string, string>>): string {
  return `${method.toUpperCase()}\n${host.toLowerCase()}\n${path || '/'}\n${canonicalQueryV2(params)}`;
}

export function signatureV2(stringToSign: string, secret: string, method: V2SignatureMethod): string {
  return createHmac(method === 'HmacSHA256' ? 'sha256' : 'sha1', secret).update(stringToSign, 'utf8').digest('base64');
}

export interface SignV2Options {
  /** The endpoint URL the request goes to (its host:port and path are signed). */
  endpoint: string;
  action: string;
  params?: Readonly<Record<string, string>>;
  credentials: Ec2Credentials;
  method?: 'GET' | 'POST';
  signatureMethod?: V2SignatureMethod;
  version?: string;
  /** Defaults to now; fixed in tests. */
  timestamp?: Date;
}

/** The complete signed parameter set (Action, Version, auth parameters, Signature). */
export function signV2(o: SignV2Options): Record<string, string> {
  const url = new URL(o.endpoint);
  const signatureMethod = o.signatureMethod ?? 'HmacSHA256';
  const params: Record<string, string> = {
    ...o.params,
    Action: o.action,
    Version: o.version ?? NIMBUS_EC2_API_VERSION,
    AWSAccessKeyId: o.credentials.accessKeyId,
    SignatureVersion: '2',
    SignatureMethod: signatureMethod,
    Timestamp: (o.timestamp ?? new Date()).toISOString().replace(/\.\d{3}Z$/, 'Z'),
  };
  const sts = stringToSignV2(o.method ?? 'POST', url.host, url.pathname, params);
  params.Signature = signatureV2(sts, o.credentials.secretAccessKey, signatureMethod);
  return params;
}

/** A signed request ready for fetch(): POST with a form body, or GET with the query in the URL. */
export function signedV2Request(o: SignV2Options): { url: string; init: RequestInit } {
  const method = o.method ?? 'POST';
  const form = new URLSearchParams(signV2({ ...o, method })).toString();
  if (method === 'GET') {
    const url = new URL(o.endpoint);
    url.search = form;
    return { url: url.toString(), init: { method } };
  }
  return {
    url: o.endpoint,
    init: { method, body: form, headers: { 'content-type': 'application/x-www-form-urlencoded; charset=utf-8' } },
  };
}
