/**
 * Webhook notifier: POSTs each event as one JSON object. Each attempt has its own timeout; failed
 * attempts are retried with exponential back-off. The EventBus calls send() one event at a time, so a
 * slow receiver delays later events but never reorders them.
 *
 * With a secret, every attempt is signed: `x-nimbus-ha-timestamp` (Unix seconds) and
 * `x-nimbus-ha-signature: v1=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`, over the exact bytes
 * sent, so a receiver can refuse forged and replayed deliveries (docs/monitoring.md has the check).
 */
import { createHmac } from 'node:crypto';
import axios, { type AxiosError } from 'axios';
import { setTimeout as delay } from 'node:timers/promises';
import type { HaEvent, Notifier } from '../../src/ports.js';
import { HaError, errorMessage } from '../../src/errors.js';

export interface WebhookNotifierOptions {
  url: string;
  /** Timeout of one attempt (connect + response), ms. Default 5000. */
  timeoutMs?: number;
  /** Extra attempts after a failure. Default 3. */
  retries?: number;
  /** Wait before the first retry, doubled per retry. Default 500 ms. */
  backoffMs?: number;
  /** Upper bound of the wait between retries. Default 10000 ms. */
  maxBackoffMs?: number;
  /** Extra headers, e.g. Authorization. */
  headers?: Record<string, string>;
  /** Key of the HMAC-SHA256 signature of each delivery (none: deliveries are not signed). */
  secret?: string;
  /** Injected for tests: Unix time in seconds. */
  nowSeconds?: () => number;
  /** Injected for tests; defaults to a real timer. */
  sleep?: (ms: number) => Promise<void>;
}

/** Statuses worth retrying: the receiver may answer differently later. Other 4xx are permanent. */
function retryable(err: unknown): boolean {
  const status = (err as AxiosError).response?.status;
  if (status === undefined) return true;
  return status >= 500 || status === 408 || status === 429;
}

function describeError(err: unknown, timeoutMs: number): string {
  const e = err as AxiosError;
  if (e.response) return `HTTP ${e.response.status}`;
  if (e.code === 'ECONNABORTED' || e.code === 'ERR_CANCELED' || e.name === 'CanceledError') {
    return `no answer within ${timeoutMs} ms`;
  }
  return e.code ? `${e.code}: ${errorMessage(err)}` : errorMessage(err);
}

export const TIMESTAMP_HEADER = 'x-nimbus-ha-timestamp';
export const SIGNATURE_HEADER = 'x-nimbus-ha-signature';

/** The signature header value of a delivery: `v1=` and the hex HMAC-SHA256 of "<timestamp>.<body>". */
export function webhookSignature(secret: string, timestamp: number, body: string): string {
  return `v1=${createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex')}`;
}

export class WebhookNotifier implements Notifier {
  readonly name: string;
  private readonly timeoutMs: number;
  private readonly retries: number;
  private readonly backoffMs: number;
  private readonly maxBackoffMs: number;
  private readonly sleep: (ms: number) => Promise<void>;

  constructor(private readonly opts: WebhookNotifierOptions) {
    this.name = `webhook ${new URL(opts.url).origin}`;
    this.timeoutMs = opts.timeoutMs ?? 5_000;
    this.retries = opts.retries ?? 3;
    this.backoffMs = opts.backoffMs ?? 500;
    this.maxBackoffMs = opts.maxBackoffMs ?? 10_000;
    this.sleep = opts.sleep ?? ((ms) => delay(ms));
  }

  async send(event: HaEvent): Promise<void> {
    const errors: string[] = [];
    // One serialization, sent as is: the signature covers exactly these bytes.
    const body = JSON.stringify(event);
    for (let attempt = 0; attempt <= this.retries; attempt++) {
      try {
        const signed: Record<string, string> = {};
        if (this.opts.secret) {
          // Signed afresh per attempt: a receiver may refuse deliveries older than a few minutes.
          const ts = Math.floor(this.opts.nowSeconds ? this.opts.nowSeconds() : Date.now() / 1000);
          signed[TIMESTAMP_HEADER] = String(ts);
          signed[SIGNATURE_HEADER] = webhookSignature(this.opts.secret, ts, body);
        }
        await axios.post(this.opts.url, body, {
          timeout: this.timeoutMs,
          // axios' timeout only covers the response; the signal also bounds connect and a stalled body.
          signal: AbortSignal.timeout(this.timeoutMs),
          headers: { 'content-type': 'application/json', 'user-agent': 'nimbus-ha', ...this.opts.headers, ...signed },
          transformRequest: [(d: string) => d],
          maxRedirects: 0,
          validateStatus: (s) => s >= 200 && s < 300,
        });
        return;
      } catch (err) {
        errors.push(describeError(err, this.timeoutMs));
        if (!retryable(err) || attempt === this.retries) break;
        await this.sleep(Math.min(this.maxBackoffMs, this.backoffMs * 2 ** attempt));
      }
    }
    throw new HaError(
      'NOTIFY_FAILED',
      `webhook ${this.opts.url} did not accept event ${event.type} after ${errors.length} attempt(s) ` +
        `(${errors.join('; ')}); check that the receiver is reachable and answers 2xx`,
      { attempts: errors.length, errors },
    );
  }
}
