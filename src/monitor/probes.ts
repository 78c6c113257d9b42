/**
 * Probe factories. A probe is `(timeoutMs) => Promise<ProbeResult>`; it never rejects and never takes
 * (much) longer than timeoutMs: a hung check is abandoned, its resources released, and reported as failed.
 */
import { spawn } from 'node:child_process';
import http from 'node:http';
import https from 'node:https';
import { connect } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { S3Client } from '@aws-sdk/client-s3';
import { type ProbeResult } from '../ports.js';
import { assertNever } from '../util/assert-never.js';
import { errorMessage } from '../errors.js';
import type { ProbeSpec } from './config.js';
import { childEnv } from '../util/child-env.js';

export type Probe = (timeoutMs: number) => Promise<ProbeResult>;

/** Body of a check: resolves with a success detail, rejects with the failure; must honour the signal. */
type Check = (signal: AbortSignal) => Promise<string>;

/**
 * Runs a check under a deadline. When the deadline passes the signal aborts (so the check can release
 * sockets or kill processes) and the probe resolves as failed without waiting for the check to notice.
 */
export function runWithTimeout(check: Check, timeoutMs: number): Promise<ProbeResult> {
  const started = performance.now();
  const controller = new AbortController();
  const latency = () => Math.round((performance.now() - started) * 10) / 10;
  return new Promise<ProbeResult>((resolve) => {
    let settled = false;
    const finish = (r: ProbeResult) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(r);
    };
    const timer = setTimeout(() => {
      controller.abort();
      finish({ ok: false, latencyMs: latency(), detail: `timed out after ${timeoutMs} ms` });
    }, timeoutMs);
    let pending: Promise<string>;
    try {
      pending = check(controller.signal);
    } catch (err) {
      pending = Promise.reject(err);
    }
    pending.then(
      (detail) => finish({ ok: true, latencyMs: latency(), detail }),
      (err: unknown) => finish({ ok: false, latencyMs: latency(), detail: oneLine(errorMessage(err)) }),
    );
  });
}

function oneLine(s: string): string {
  const line = s.replace(/\s+/g, ' ').trim();
  return line.length > 300 ? line.slice(0, 297) + '...' : line || 'failed';
}

export interface HttpProbeOptions {
  url: string;
  expectStatusMin?: number;
  expectStatusMax?: number;
  bodyContains?: string;
}

/** Most of a body an HTTP probe reads when it looks for a text in it. */
const MAX_PROBE_BODY = 1024 * 1024;

export interface HttpExchange {
  status: number;
  /** The body, up to `maxBody` bytes (empty when `maxBody` is 0). */
  body: string;
}

/**
 * One HTTP request for a probe on plain node:http(s): a probe runs every few seconds for the life of
 * the sidecar, and a fetch() client costs an idle process several times more CPU per check. Each check
 * opens its own connection, so it also proves the service still accepts connections, and never races a
 * server closing an idle kept-alive one (a false failure). Redirects are not followed.
 */
export function httpExchange(
  target: URL,
  o: { method?: string; headers?: Record<string, string>; body?: string; maxBody?: number; signal: AbortSignal },
): Promise<HttpExchange> {
  const mod = target.protocol === 'https:' ? https : http;
  const maxBody = o.maxBody ?? MAX_PROBE_BODY;
  const headers: Record<string, string> = { 'user-agent': 'nimbus-ha-probe', connection: 'close', ...o.headers };
  if (o.body !== undefined) headers['content-length'] = String(Buffer.byteLength(o.body));
  return new Promise<HttpExchange>((resolve, reject) => {
    const req = mod.request(target, { method: o.method ?? 'GET', agent: false, signal: o.signal, headers }, (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (c: Buffer) => {
        if (size >= maxBody) return;
        chunks.push(c);
        size += c.length;
      });
      res.on('error', reject);
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('error', (err) => reject(new Error(`${o.method ?? 'GET'} ${target.origin}${target.pathname}: ${err.message}`)));
    req.end(o.body);
  });
}

/** GET a URL; healthy when the status is in range (default 200–399) and the body contains the text. */
export function httpProbe(o: HttpProbeOptions): Probe {
  const min = o.expectStatusMin ?? 200;
  const max = o.expectStatusMax ?? 399;
  const url = new URL(o.url);
  return (timeoutMs) =>
    runWithTimeout(async (signal) => {
      const { status, body } = await httpExchange(url, { signal, maxBody: o.bodyContains === undefined ? 0 : MAX_PROBE_BODY });
      if (status < min || status > max) throw new Error(`HTTP ${status} from ${o.url} (expected ${min}-${max})`);
      if (o.bodyContains !== undefined && !body.includes(o.bodyContains)) {
        throw new Error(`HTTP ${status} from ${o.url} but body lacks "${o.bodyContains}"`);
      }
      return `HTTP ${status}`;
    }, timeoutMs);
}

/** Healthy when a TCP connection to host:port is accepted. */
export function tcpProbe(o: { host: string; port: number }): Probe {
  return (timeoutMs) =>
    runWithTimeout(
      (signal) =>
        new Promise<string>((resolve, reject) => {
          const socket = connect({ host: o.host, port: o.port });
          const onAbort = () => socket.destroy();
          signal.addEventListener('abort', onAbort, { once: true });
          socket.once('connect', () => {
            signal.removeEventListener('abort', onAbort);
            socket.destroy();
            resolve(`connected to ${o.host}:${o.port}`);
          });
          socket.once('error', (err) => {
            signal.removeEventListener('abort', onAbort);
            socket.destroy();
            reject(new Error(`connect ${o.host}:${o.port}: ${err.message}`));
          });
        }),
      timeoutMs,
    );
}

/** Healthy when a fresh connection can run the query (default `select 1`). */
export function postgresProbe(o: { connectionString: string; query?: string }): Probe {
  const query = o.query ?? 'select 1';
  return (timeoutMs) =>
    runWithTimeout(async (signal) => {
      // Loaded on first use: a sidecar without a PostgreSQL probe does not carry the driver.
      const { default: pg } = await import('pg');
      const client = new pg.Client({
        connectionString: o.connectionString,
        connectionTimeoutMillis: timeoutMs,
        query_timeout: timeoutMs,
        application_name: 'nimbus-ha-probe',
      });
      // A server that dies between the answer and end() sends a FATAL (57P01) that no query is waiting
      // for: pg emits it as an 'error' event, and an unheard 'error' would take the whole sidecar down.
      client.on('error', () => undefined);
      // end() on a half-open connection can itself hang; the deadline has already failed the probe.
      const close = () => void client.end().catch(() => undefined);
      signal.addEventListener('abort', close, { once: true });
      try {
        await client.connect();
        await client.query(query);
        return `query ok`;
      } finally {
        signal.removeEventListener('abort', close);
        close();
      }
    }, timeoutMs);
}

export interface S3ProbeOptions {
  endpoint: string;
  bucket: string;
  region?: string;
  accessKeyId?: string;
  secretAccessKey?: string;
  forcePathStyle?: boolean;
}

/** Healthy when HeadBucket succeeds. The client is created once per probe and reused. */
export function s3Probe(o: S3ProbeOptions): Probe {
  let client: S3Client | null = null;
  return (timeoutMs) =>
    runWithTimeout(async (signal) => {
      // The SDK is loaded on first use, so sidecars without an S3 probe do not carry it.
      const { HeadBucketCommand, S3Client: Client } = await import('@aws-sdk/client-s3');
      client ??= new Client({
        endpoint: o.endpoint,
        region: o.region ?? 'us-east-1',
        forcePathStyle: o.forcePathStyle ?? true,
        maxAttempts: 1,
        ...(o.accessKeyId && o.secretAccessKey
          ? { credentials: { accessKeyId: o.accessKeyId, secretAccessKey: o.secretAccessKey } }
          : {}),
      });
      try {
        await client.send(new HeadBucketCommand({ Bucket: o.bucket }), { abortSignal: signal });
      } catch (err) {
        const status = (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
        const name = (err as Error).name;
        throw new Error(`HeadBucket ${o.bucket} at ${o.endpoint}: ${name}${status ? ` (HTTP ${status})` : ''}`);
      }
      return `bucket ${o.bucket} reachable`;
    }, timeoutMs);
}

/**
 * Healthy when `sh -c command` exits 0. It runs in its own process group so a timeout kills the whole
 * pipeline, not just the shell.
 */
export function commandProbe(o: { command: string; cwd?: string; env?: NodeJS.ProcessEnv }): Probe {
  return (timeoutMs) =>
    runWithTimeout(
      (signal) =>
        new Promise<string>((resolve, reject) => {
          const child = spawn('/bin/sh', ['-c', o.command], {
            cwd: o.cwd,
            env: o.env ?? childEnv(),
            detached: true,
            stdio: ['ignore', 'pipe', 'pipe'],
          });
          let output = '';
          const keep = (b: Buffer) => {
            output = (output + b.toString()).slice(-2000);
          };
          child.stdout.on('data', keep);
          child.stderr.on('data', keep);
          const kill = () => {
            if (child.pid === undefined) return;
            try {
              process.kill(-child.pid, 'SIGKILL');
            } catch {
              /* already gone */
            }
          };
          signal.addEventListener('abort', kill, { once: true });
          child.once('error', (err) => {
            signal.removeEventListener('abort', kill);
            reject(new Error(`cannot run probe command: ${err.message}`));
          });
          child.once('close', (code, sig) => {
            signal.removeEventListener('abort', kill);
            const last = output.trim().split('\n').pop() ?? '';
            if (code === 0) resolve(last ? `exit 0: ${last}` : 'exit 0');
            else reject(new Error(`exit ${code ?? sig}${last ? `: ${last}` : ''}`));
          });
        }),
      timeoutMs,
    );
}

/** Builds the probe described by a config entry. */
export function createProbe(spec: ProbeSpec): Probe {
  switch (spec.kind) {
    case 'http':
      return httpProbe(spec);
    case 'tcp':
      return tcpProbe(spec);
    case 'postgres':
      return postgresProbe(spec);
    case 's3':
      return s3Probe(spec);
    case 'command':
      return commandProbe(spec);
    default:
      return assertNever(spec, 'probe kind');
  }
}
