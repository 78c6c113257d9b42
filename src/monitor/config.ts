/**
 * Config sections for service monitoring (`monitor`) and operator notifications (`notify`).
 * The lead's top-level schema embeds these; every object is strict so a misspelt key is an error.
 */
import { z } from 'zod';

const positiveMs = (what: string) => z.number().int().positive().describe(what);

const httpProbeSchema = z
  .object({
    kind: z.literal('http').describe('HTTP GET probe.'),
    url: z.string().url().describe('URL to GET, e.g. http://127.0.0.1:8443/health.'),
    expectStatusMin: z
      .number()
      .int()
      .min(100)
      .max(599)
      .default(200)
      .describe('Lowest HTTP status counted as healthy.'),
    expectStatusMax: z
      .number()
      .int()
      .min(100)
      .max(599)
      .default(399)
      .describe('Highest HTTP status counted as healthy.'),
    bodyContains: z
      .string()
      .optional()
      .describe('When set, the response body must contain this text for the probe to pass.'),
  })
  .strict();

const tcpProbeSchema = z
  .object({
    kind: z.literal('tcp').describe('TCP connect probe.'),
    host: z.string().min(1).describe('Host to connect to.'),
    port: z.number().int().min(1).max(65535).describe('TCP port to connect to.'),
  })
  .strict();

const postgresProbeSchema = z
  .object({
    kind: z.literal('postgres').describe('PostgreSQL query probe.'),
    connectionString: z
      .string()
      .min(1)
      .describe('libpq-style URL, e.g. postgres://nimbus@127.0.0.1:5432/nimbus (password via PGPASSWORD).'),
    query: z.string().min(1).default('select 1').describe('Query that must succeed.'),
  })
  .strict();

const s3ProbeSchema = z
  .object({
    kind: z.literal('s3').describe('S3 HeadBucket probe (Cumulus or any S3-compatible store).'),
    endpoint: z.string().url().describe('S3 endpoint URL, e.g. http://127.0.0.1:8888.'),
    bucket: z.string().min(1).describe('Bucket that must exist and be readable.'),
    region: z.string().default('us-east-1').describe('Region name sent in requests.'),
    accessKeyId: z.string().optional().describe('Access key; the SDK default chain is used when absent.'),
    secretAccessKey: z.string().optional().describe('Secret key matching accessKeyId.'),
    forcePathStyle: z.boolean().default(true).describe('Use path-style URLs (needed by most stand-ins).'),
  })
  .strict();

const commandProbeSchema = z
  .object({
    kind: z.literal('command').describe('Shell command probe: exit status 0 means healthy.'),
    command: z.string().min(1).describe('Command run with /bin/sh -c; killed (process group) on timeout.'),
    cwd: z.string().optional().describe('Working directory of the command.'),
  })
  .strict();

/** One probe of a service; `kind` selects the fields. */
export const probeSpecSchema = z
  .discriminatedUnion('kind', [
    httpProbeSchema,
    tcpProbeSchema,
    postgresProbeSchema,
    s3ProbeSchema,
    commandProbeSchema,
  ])
  .superRefine((p, ctx) => {
    if (p.kind === 'http' && p.expectStatusMin > p.expectStatusMax) {
      ctx.addIssue({
        code: 'custom',
        message: 'expectStatusMin must not exceed expectStatusMax',
        path: ['expectStatusMin'],
      });
    }
  })
  .describe('How to tell whether the service is healthy.');
export type ProbeSpec = z.infer<typeof probeSpecSchema>;

export const backoffSchema = z
  .object({
    baseMs: positiveMs('Wait before the second restart of an incident; doubles for each further one.').default(
      5_000,
    ),
    maxMs: positiveMs('Upper bound of the wait between restarts.').default(60_000),
  })
  .strict()
  .default({})
  .describe('Exponential back-off between restarts within one window.');

/** Restart policy knobs, shared by the pure policy and the service config. */
export const policyFieldsSchema = z
  .object({
    failuresBeforeAction: z
      .number()
      .int()
      .min(1)
      .default(2)
      .describe('Consecutive failed probes before the service counts as failed and a restart is tried.'),
    maxRestarts: z
      .number()
      .int()
      .min(0)
      .default(4)
      .describe('Restarts allowed within windowMs; one more failure after that escalates (handover).'),
    windowMs: positiveMs('Sliding window in which restarts are counted.').default(600_000),
    backoff: backoffSchema,
    recoverAfter: z
      .number()
      .int()
      .min(1)
      .default(2)
      .describe('Consecutive successful probes before a failed service counts as recovered.'),
  })
  .strict();
export type PolicyConfig = z.infer<typeof policyFieldsSchema>;

export const webhookConfigSchema = z
  .object({
    url: z.string().url().describe('Receiver URL; each event is POSTed as one JSON object.'),
    timeoutMs: positiveMs('Timeout of one delivery attempt.').default(5_000),
    retries: z.number().int().min(0).max(20).default(3).describe('Extra attempts after a failed delivery.'),
    backoffMs: positiveMs('Wait before the first retry; doubles for each further retry.').default(500),
    maxBackoffMs: positiveMs('Upper bound of the wait between retries.').default(10_000),
    headers: z
      .record(z.string())
      .default({})
      .describe('Extra request headers, e.g. an Authorization token.'),
    secret: z
      .string()
      .min(16, 'at least 16 characters')
      .optional()
      .describe('Key of the HMAC-SHA256 signature each delivery carries (x-nimbus-ha-timestamp, x-nimbus-ha-signature: v1=<hex of HMAC(secret, "<timestamp>.<body>")>; docs/monitoring.md shows the check). Env NHA_WEBHOOK_SECRET overrides. Without it deliveries are not signed.'),
  })
  .strict();
export type WebhookConfig = z.infer<typeof webhookConfigSchema>;

export const emailConfigSchema = z
  .object({
    smtp: z
      .object({
        host: z.string().min(1).describe('SMTP server host.'),
        port: z.number().int().min(1).max(65535).default(587).describe('SMTP server port.'),
        secure: z.boolean().default(false).describe('Implicit TLS (port 465); otherwise STARTTLS when offered.'),
        user: z.string().optional().describe('SMTP user name (no authentication when absent).'),
        pass: z.string().optional().describe('SMTP password.'),
        timeoutMs: positiveMs('Connection and send timeout.').default(10_000),
      })
      .strict()
      .describe('SMTP relay used to send mail.'),
    from: z.string().min(3).describe('Sender address.'),
    to: z.array(z.string().min(3)).min(1).describe('Recipient addresses.'),
  })
  .strict();
export type EmailConfig = z.infer<typeof emailConfigSchema>;

export const notifyConfigSchema = z
  .object({
    webhook: webhookConfigSchema.optional().describe('POST each event as JSON to a URL.'),
    email: emailConfigSchema.optional().describe('Mail each event over SMTP.'),
    events: z
      .array(z.string().min(1))
      .optional()
      .describe('Event types sent to notifiers (all when absent), e.g. ["failover", "service_escalated"].'),
  })
  .strict()
  .default({})
  .describe('Operator notifications; delivered in event order by one queue.');
export type NotifyConfig = z.infer<typeof notifyConfigSchema>;
