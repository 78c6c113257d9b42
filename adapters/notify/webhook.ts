/**
 * Webhook notifier: POSTs each event as one JSON object. Each attempt has its own timeout; failed
 * attempts are retried with exponential back-off. The EventBus calls send() one event at a time, so a
 * slow receiver delays later events but never reorders them.
 */
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
    for (let attempt = 0; attempt <= this.retries; attempt++) {
      try {
        await axios.post(this.opts.url, event, {
          timeout: this.timeoutMs,
          // axios' timeout only covers the response; the signal also bounds connect and a stalled body.
          signal: AbortSignal.timeout(this.timeoutMs),
          headers: { 'content-type': 'application/json', 'user-agent': 'nimbus-ha', ...this.opts.headers },
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
