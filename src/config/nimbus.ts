/** Config section for the Nimbus head-node services (`services.nimbus` or wherever the lead mounts it). */
import { z } from 'zod';
import { policyFieldsSchema } from '../monitor/config.js';

const credentials = z
  .object({
    /** Access id of a Nimbus user the probe signs as (create one with nimbus-new-user). */
    accessKeyId: z.string().min(1).describe('access id of the Nimbus user the probe signs requests as'),
    /** That user's secret. */
    secretAccessKey: z.string().min(1).describe('secret of that user'),
  })
  .strict();

export const nimbusConfigSchema = z
  .object({
    /**
     * `nimbusctl`: a real install, driven by `$NIMBUS_HOME/bin/nimbusctl <target> start|stop|status`.
     * `process`: run `command` as a child process group (the stand-in, or any foreground service).
     */
    mode: z.enum(['nimbusctl', 'process']).describe('how the service is started and stopped'),
    /** NIMBUS_HOME: holds bin/nimbusctl, services/, cumulus/, var/ (the state to replicate). */
    home: z.string().min(1).describe('NIMBUS_HOME of this head node'),
    /** process mode: argv of the service (no shell), e.g. ["node", "dist/fixtures/nimbus-vm-service/main.js", "--home", "/opt/nimbus"]. */
    command: z.array(z.string().min(1)).min(1).optional().describe('process mode: argv of the service (no shell)'),
    /** process mode: extra environment of the service (host-specific settings kept out of synced trees). */
    env: z.record(z.string()).default({}).describe('process mode: extra environment variables'),
    /** process mode: working directory of the service (default: the sidecar's). */
    cwd: z.string().min(1).optional().describe('process mode: working directory'),
    /** process mode: append the service's output here (default: discarded). */
    logFile: z.string().min(1).optional().describe('process mode: file that receives the service output'),
    /** process mode: where the PID is recorded, so a restarted sidecar can still stop the service. */
    pidFile: z.string().min(1).optional().describe('process mode: PID file'),
    /** nimbusctl mode: which part nimbusctl acts on (`all` omits the target: services and Cumulus). */
    nimbusctlTarget: z.enum(['services', 'cumulus', 'all']).default('services').describe('nimbusctl mode: target'),
    /** Time between SIGTERM and SIGKILL (process mode), or the nimbusctl command timeout. */
    stopTimeoutMs: z.number().int().min(100).default(10_000).describe('how long a stop may take before it is forced'),
    /** nimbusctl mode: how long `nimbusctl … start` may take. */
    startTimeoutMs: z.number().int().min(100).default(120_000).describe('nimbusctl mode: start command timeout'),
    /** process mode: a service exiting within this time after start counts as a failed start. */
    startGraceMs: z.number().int().min(0).default(500).describe('process mode: early-exit detection window'),
    monitor: policyFieldsSchema
      .extend({
        intervalMs: z
          .number()
          .int()
          .min(10)
          .optional()
          .describe('probe period for the head node\'s services (default timings.probeMs: 2000 ms with the fast profile, 5000 ms with frugal; on the timer grid the heartbeat shares, as services[].intervalMs)'),
        timeoutMs: z.number().int().min(10).default(3_000).describe('a probe that takes longer counts as failed'),
      })
      .strict()
      .default({})
      .describe('probe pace and restart policy of the head-node services (restart up to maxRestarts, then hand over)'),
    ec2: z
      .object({
        /** EC2 Query endpoint of the local VM service (the probe talks to this node, not the VIP). */
        url: z.string().url().describe('EC2 Query endpoint of the local VM service'),
        credentials,
        signatureMethod: z.enum(['HmacSHA256', 'HmacSHA1']).default('HmacSHA256').describe('v2 signature method'),
        caFile: z.string().min(1).optional().describe('PEM of the CA that issued the frontend certificate (a real head node: Nimbus\'s own CA under var/ca); trusted instead of the system store'),
        serverName: z.string().min(1).optional().describe('hostname the frontend certificate must carry (the head node\'s hostname) when url holds an address; sent as SNI'),
      })
      .strict(),
    wsrf: z
      .object({
        url: z.string().url().describe('WSRF services endpoint of this node (a real head node: https://…:8443/)'),
        caFile: z.string().min(1).optional().describe('PEM of the CA that issued the frontend certificate (a real head node: Nimbus\'s own CA under var/ca); trusted instead of the system store'),
        serverName: z.string().min(1).optional().describe('hostname the frontend certificate must carry (the head node\'s hostname) when url holds an address; sent as SNI'),
      })
      .strict()
      .optional()
      .describe('probe the WSRF frontend too: a TLS connection with the expected certificate and any HTTP answer'),
    cumulus: z
      .object({
        /** Cumulus (S3) endpoint of this node; the probe runs HeadBucket on `bucket`. */
        url: z.string().url().describe('Cumulus (S3 API) endpoint of this node'),
        bucket: z.string().min(1).default('Repo').describe('repository bucket'),
        region: z.string().min(1).default('us-east-1').describe('S3 signing region'),
        credentials: credentials.optional(),
      })
      .strict()
      .optional()
      .describe('probe Cumulus too (HeadBucket on the repository bucket)'),
  })
  .strict()
  .superRefine((c, ctx) => {
    if (c.mode === 'process' && !c.command) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['command'], message: 'process mode needs command (an argv array)' });
    }
    if (c.mode === 'nimbusctl' && c.command) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['command'], message: 'command is only used in process mode' });
    }
  });

/** The parsed section (defaults filled in). */
export type NimbusConfig = z.infer<typeof nimbusConfigSchema>;
/** The section as written in a config file (defaults may be omitted). */
export type NimbusConfigInput = z.input<typeof nimbusConfigSchema>;
