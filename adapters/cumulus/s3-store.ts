/**
 * ObjectStore on an S3-compatible repository (Cumulus, MinIO, s3rver) through @aws-sdk/client-s3.
 * Cumulus speaks an older dialect: signature version 2 and no multipart POST, so both are options.
 */
import http from 'node:http';
import https from 'node:https';
import type { Readable } from 'node:stream';
import {
  CopyObjectCommand,
  DeleteObjectCommand,
  GetObjectAclCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsCommand,
  PutObjectAclCommand,
  PutObjectCommand,
  S3Client,
  type S3ClientConfig,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import type { CannedAcl, ObjectBody, ObjectInfo, ObjectStore, PutOptions } from '../../src/ports.js';
import { HaError, errorMessage } from '../../src/errors.js';
import { SignatureV2Signer, encodeRfc3986 } from './sigv2.js';

// The SDK's Node 20 support warning (see src/cli/main.ts) also for programs that reach the store without
// the CLI: the benchmarks and the chaos harness. =false still shows it.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

export interface S3StoreOptions {
  /** Endpoint URL, e.g. http://127.0.0.1:8888 (Cumulus) or https://s3.example.org. */
  endpoint: string;
  region?: string;
  bucket: string;
  /** Path-style addressing (http://host/bucket/key); Cumulus and s3rver need it. Default true. */
  forcePathStyle?: boolean;
  /** Credentials; when absent the SDK's default provider chain is used (v4 only). */
  accessKeyId?: string;
  secretAccessKey?: string;
  /** 'v2' for Cumulus (Authorization: AWS id:signature), 'v4' for current S3 servers. Default 'v4'. */
  signatureVersion?: 'v4' | 'v2';
  /** Use multipart uploads for objects larger than partSize. Cumulus has no multipart: set false. Default true. */
  multipart?: boolean;
  /**
   * Multipart part size in bytes (>= 5 MiB). Default 5 MiB, as rclone's. Objects larger than 10,000 parts
   * of this size (S3's limit) get larger parts, in whole MiB.
   */
  partSize?: number;
  /**
   * Objects up to this size go up in one streaming PUT even when multipart is on (one request, no
   * server-side reassembly). Default 128 MiB; at least partSize.
   */
  multipartThreshold?: number;
  /**
   * Parts uploaded in parallel per object. Default 2. A multipart copy holds the parts in flight, the
   * part being assembled and its copy, plus buffers the GC has not freed yet: about 10 × partSize in all
   * at the defaults (docs/repository-sync.md).
   */
  queueSize?: number;
  /** Sockets per endpoint. Default 32. */
  maxSockets?: number;
  /** SDK attempts per request (streamed PUTs are not retried by the SDK once the body was read). Default 3. */
  maxAttempts?: number;
}

const MiB = 1024 * 1024;
/** S3's largest part count per multipart upload. */
const MAX_PARTS = 10_000;
const DEFAULT_PART_SIZE = 5 * MiB;

function stripQuotes(etag: string | undefined): string {
  return (etag ?? '').replace(/^"+|"+$/g, '').replace(/^W\//, '');
}

function lowerKeys(m: Record<string, string> | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(m ?? {})) out[k.toLowerCase()] = v;
  return out;
}

interface SdkErrorShape {
  name?: string;
  Code?: string;
  code?: string;
  $metadata?: { httpStatusCode?: number };
}

const SILENT_LOGGER = { trace: () => undefined, debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined };

const ALL_USERS = 'http://acs.amazonaws.com/groups/global/AllUsers';
const AUTHENTICATED_USERS = 'http://acs.amazonaws.com/groups/global/AuthenticatedUsers';

/** The canned ACL an object's grants amount to (the owner's own grant aside). */
export function cannedFromGrants(grants: ReadonlyArray<{ uri: string; permission: string }>): CannedAcl {
  const has = (uri: string, perm: string) => grants.some((g) => g.uri === uri && (g.permission === perm || g.permission === 'FULL_CONTROL'));
  if (has(ALL_USERS, 'WRITE')) return 'public-read-write';
  if (has(ALL_USERS, 'READ')) return 'public-read';
  if (has(AUTHENTICATED_USERS, 'READ')) return 'authenticated-read';
  return 'private';
}

export class S3Store implements ObjectStore {
  readonly client: S3Client;
  /** Uploads, on the same sockets: see the constructor. */
  private readonly uploadClient: S3Client;
  private readonly multipart: boolean;
  private readonly partSize: number;
  private readonly queueSize: number;
  private readonly multipartThreshold: number;
  /** The server answered NotImplemented (or AccessDenied) to GET ?acl: no ACLs to copy; not asked again. */
  private aclsUnsupported = false;

  constructor(private readonly opts: S3StoreOptions) {
    this.multipart = opts.multipart ?? true;
    this.partSize = Math.max(5 * MiB, opts.partSize ?? DEFAULT_PART_SIZE);
    this.queueSize = Math.max(1, opts.queueSize ?? 2);
    this.multipartThreshold = Math.max(this.partSize, opts.multipartThreshold ?? 128 * MiB);
    const isHttps = opts.endpoint.startsWith('https:');
    const maxSockets = opts.maxSockets ?? 32;
    const config: S3ClientConfig = {
      endpoint: opts.endpoint,
      region: opts.region ?? 'us-east-1',
      forcePathStyle: opts.forcePathStyle ?? true,
      maxAttempts: opts.maxAttempts ?? 3,
      // Newer SDKs add CRC checksums with aws-chunked bodies by default; Cumulus and s3rver reject those.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      // Failures reach the caller as errors (and become events); without a logger of its own the SDK also
      // prints a console warning for every failed streaming upload, e.g. through a failover.
      logger: SILENT_LOGGER,
      // Explicit agents: a plain-HTTP loopback endpoint never consults AWS_CA_BUNDLE or proxy settings.
      requestHandler: isHttps
        ? { httpsAgent: new https.Agent({ keepAlive: true, maxSockets }), connectionTimeout: 5000 }
        : { httpAgent: new http.Agent({ keepAlive: true, maxSockets }), connectionTimeout: 5000 },
    };
    if (opts.accessKeyId && opts.secretAccessKey) {
      config.credentials = { accessKeyId: opts.accessKeyId, secretAccessKey: opts.secretAccessKey };
    }
    if (opts.signatureVersion === 'v2') {
      if (!opts.accessKeyId || !opts.secretAccessKey) {
        throw new HaError('CONFIG_INVALID', 'signatureVersion v2 needs accessKeyId and secretAccessKey in the repository config.');
      }
      config.signer = new SignatureV2Signer(opts.accessKeyId, opts.secretAccessKey);
    }
    // cacheMiddleware: the SDK builds each command's middleware chain once instead of on every request
    // (its throughput option for S3). A call that passes options (an AbortSignal) cannot use that cache
    // and clears it, so uploads, which need one (a failing body must cancel its PUT), and lib-storage's
    // multipart calls go through a second client; both share the agent above, so the sockets are shared.
    this.client = new S3Client({ ...config, cacheMiddleware: true });
    this.uploadClient = new S3Client(config);
    for (const c of [this.client, this.uploadClient]) {
      // The SDK's logger middleware builds a redacted copy of every request and answer for logger.info,
      // even for a silent logger; errors reach the caller anyway. Without it a copy costs less CPU.
      c.middlewareStack.remove('loggerMiddleware');
    }
  }

  describe(): string {
    return `s3 ${this.opts.endpoint}/${this.opts.bucket} (sig ${this.opts.signatureVersion ?? 'v4'}, ${this.multipart ? 'multipart' : 'single PUT'})`;
  }

  /** The part size put() uses for an object of `size` bytes, or null when it sends one PUT. */
  uploadPartSize(size: number): number | null {
    if (!this.multipart || size <= this.multipartThreshold) return null;
    return Math.max(this.partSize, Math.ceil(size / MAX_PARTS / MiB) * MiB);
  }

  async *list(prefix?: string): AsyncIterable<ObjectInfo> {
    // ListObjects (v1) because Cumulus does not implement ListObjectsV2.
    let marker: string | undefined;
    for (;;) {
      const page = await this.call('list', () =>
        this.client.send(new ListObjectsCommand({ Bucket: this.opts.bucket, Prefix: prefix, Marker: marker, MaxKeys: 1000 })),
      );
      const contents = page.Contents ?? [];
      for (const o of contents) {
        if (o.Key === undefined) continue;
        yield { key: o.Key, size: o.Size ?? 0, etag: stripQuotes(o.ETag), mtimeMs: o.LastModified?.getTime() ?? 0 };
      }
      if (!page.IsTruncated || contents.length === 0) return;
      marker = page.NextMarker ?? contents[contents.length - 1].Key;
    }
  }

  async head(key: string): Promise<ObjectInfo | null> {
    try {
      const r = await this.client.send(new HeadObjectCommand({ Bucket: this.opts.bucket, Key: key }));
      return {
        key,
        size: r.ContentLength ?? 0,
        etag: stripQuotes(r.ETag),
        mtimeMs: r.LastModified?.getTime() ?? 0,
        metadata: lowerKeys(r.Metadata),
      };
    } catch (err) {
      const e = err as SdkErrorShape;
      if (e.$metadata?.httpStatusCode === 404) return null;
      throw this.mapError(err, `head ${key}`);
    }
  }

  async get(key: string): Promise<ObjectBody> {
    const r = await this.call(`get ${key}`, () => this.client.send(new GetObjectCommand({ Bucket: this.opts.bucket, Key: key })));
    const body = r.Body as (Readable & { info?: ObjectInfo }) | undefined;
    if (!body) throw new HaError('REPO_FAILED', `${this.describe()}: empty body for ${key}`);
    body.info = {
      key,
      size: r.ContentLength ?? 0,
      etag: stripQuotes(r.ETag),
      mtimeMs: r.LastModified?.getTime() ?? 0,
      metadata: lowerKeys(r.Metadata),
    };
    return body;
  }

  async put(key: string, body: Readable, size: number, metadata?: Record<string, string>, opts: PutOptions = {}): Promise<ObjectInfo> {
    const params = { Bucket: this.opts.bucket, Key: key, Body: body, ContentLength: size, Metadata: metadata, ...(opts.acl ? { ACL: opts.acl } : {}) };
    let etag: string | undefined;
    const partSize = this.uploadPartSize(size);
    if (partSize !== null) {
      // Upload aborts the multipart upload on any error (leavePartsOnError false), so a failed or
      // interrupted copy never leaves a visible object; only queueSize parts are buffered at once.
      const upload = new Upload({
        client: this.uploadClient,
        params,
        partSize,
        queueSize: this.queueSize,
        leavePartsOnError: false,
      });
      body.once('error', () => void upload.abort().catch(() => undefined));
      const r = await this.call(`put ${key}`, () => upload.done());
      etag = r.ETag;
    } else {
      // A body that fails mid-stream must cancel the request: otherwise the server keeps waiting for the
      // rest of Content-Length and the PUT never settles.
      const cancel = new AbortController();
      const onError = () => cancel.abort();
      body.once('error', onError);
      try {
        // Content-MD5 lets the server refuse a body damaged on the way instead of storing it.
        const contentMd5 = opts.contentMd5 ? Buffer.from(opts.contentMd5, 'hex').toString('base64') : undefined;
        const r = await this.call(`put ${key}`, () =>
          this.uploadClient.send(new PutObjectCommand({ ...params, ContentMD5: contentMd5 }), { abortSignal: cancel.signal }),
        );
        etag = r.ETag;
      } finally {
        body.off('error', onError);
      }
    }
    return { key, size, etag: stripQuotes(etag), mtimeMs: Date.now(), metadata: metadata ?? {} };
  }

  /** Server-side copy within this bucket (PUT with x-amz-copy-source; no multipart involved). */
  async copy(fromKey: string, toKey: string, metadata?: Record<string, string>): Promise<ObjectInfo> {
    // encodeURI, not encodeURIComponent: some servers (s3rver) decode this header with decodeURI, which
    // leaves reserved escapes such as %2B in place; '?' and '#' are still escaped.
    const source = `${this.opts.bucket}/${encodeURI(fromKey).replace(/[?#]/g, encodeRfc3986)}`;
    await this.call(`copy ${fromKey}`, () =>
      this.client.send(new CopyObjectCommand({ Bucket: this.opts.bucket, Key: toKey, CopySource: source, ...(metadata ? { MetadataDirective: 'REPLACE', Metadata: metadata } : { MetadataDirective: 'COPY' }) })),
    );
    const info = await this.head(toKey);
    if (!info) throw new HaError('REPO_FAILED', `${this.describe()}: copy of ${fromKey} to ${toKey} left no object`);
    return info;
  }

  async delete(key: string): Promise<void> {
    await this.call(`delete ${key}`, () => this.client.send(new DeleteObjectCommand({ Bucket: this.opts.bucket, Key: key })));
  }

  /** The object's grants as a canned ACL; null when the server keeps no ACLs (remembered) or the object is gone. */
  async getAcl(key: string): Promise<CannedAcl | null> {
    if (this.aclsUnsupported) return null;
    let grants: Array<{ uri: string; permission: string }>;
    try {
      const r = await this.client.send(new GetObjectAclCommand({ Bucket: this.opts.bucket, Key: key }));
      grants = (r.Grants ?? []).map((g) => ({ uri: g.Grantee?.URI ?? '', permission: g.Permission ?? '' }));
    } catch (err) {
      const e = err as SdkErrorShape;
      const code = e.Code ?? e.name ?? e.code ?? '';
      if (code === 'NoSuchKey' || e.$metadata?.httpStatusCode === 404) return null;
      // No ACLs kept, or none this account may read: copies go on without them (not asked again).
      if (code === 'NotImplemented' || code === 'AccessDenied' || e.$metadata?.httpStatusCode === 501 || e.$metadata?.httpStatusCode === 403) {
        this.aclsUnsupported = true;
        return null;
      }
      throw this.mapError(err, `get ACL of ${key}`);
    }
    return cannedFromGrants(grants);
  }

  async putAcl(key: string, acl: CannedAcl): Promise<void> {
    await this.call(`put ACL of ${key}`, () => this.client.send(new PutObjectAclCommand({ Bucket: this.opts.bucket, Key: key, ACL: acl })));
  }

  /** Release sockets. */
  close(): void {
    this.client.destroy();
    this.uploadClient.destroy();
  }

  private async call<T>(what: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw this.mapError(err, what);
    }
  }

  private mapError(err: unknown, what: string): Error {
    if (err instanceof HaError) return err;
    const e = err as SdkErrorShape;
    const code = e.Code ?? e.name ?? e.code ?? '';
    const status = e.$metadata?.httpStatusCode;
    const where = `${this.opts.endpoint} bucket "${this.opts.bucket}"`;
    if (['InvalidAccessKeyId', 'SignatureDoesNotMatch', 'AccessDenied', 'Forbidden'].includes(code) || status === 403) {
      return new HaError(
        'REPO_AUTH_FAILED',
        `repository ${where} refused the credentials (${code || status}) on ${what}: check accessKeyId/secretAccessKey and signatureVersion (Cumulus needs v2)`,
        { code, status },
      );
    }
    if (code === 'BadDigest' || code === 'InvalidDigest') {
      return new HaError(
        'REPO_VERIFY_FAILED',
        `repository ${where} refused the body on ${what} (${code}): the bytes received do not match the source's MD5; the stored object was left as it was`,
        { code, status },
      );
    }
    if (code === 'NoSuchBucket') {
      return new HaError(
        'REPO_BUCKET_MISSING',
        `repository ${where} has no such bucket: check the bucket name (case matters: Cumulus uses "Repo") and that it was created`,
        { code, status },
      );
    }
    if (code === 'AbortError' || e.name === 'AbortError') return err as Error;
    const net = ['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENOTFOUND'].find((c) => errorMessage(err).includes(c) || code === c);
    if (net) {
      return new HaError('REPO_FAILED', `cannot reach repository ${where} (${net}) on ${what}: check the endpoint and that the service is running`, { code: net });
    }
    return new HaError('REPO_FAILED', `repository ${where}: ${what} failed: ${code ? code + ': ' : ''}${errorMessage(err)}`, { code, status });
  }
}
