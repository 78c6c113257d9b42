/**
 * Email notifier: one message per event over SMTP, subject `[nimbus-ha] <type> on <node>`.
 */
import nodemailer, { type Transporter } from 'nodemailer';
import type { HaEvent, Notifier } from '../../src/ports.js';
import { HaError, errorMessage } from '../../src/errors.js';

export interface EmailNotifierOptions {
  smtp: {
    host: string;
    port: number;
    /** Implicit TLS (port 465); otherwise STARTTLS is used when the server offers it. */
    secure?: boolean;
    user?: string;
    pass?: string;
    /** Connection, greeting and socket timeout, ms. Default 10000. */
    timeoutMs?: number;
  };
  from: string;
  to: string[];
}

export function emailSubject(event: HaEvent): string {
  return `[nimbus-ha] ${event.type} on ${event.node}`;
}

export function emailBody(event: HaEvent): string {
  const lines = [
    event.message,
    '',
    `type:     ${event.type}`,
    `severity: ${event.severity}`,
    `node:     ${event.node}`,
    `epoch:    ${event.epoch}`,
    `time:     ${event.time}`,
  ];
  if (event.details) lines.push('', 'details:', JSON.stringify(event.details, null, 2));
  return lines.join('\n') + '\n';
}

export class EmailNotifier implements Notifier {
  readonly name: string;
  private readonly transport: Transporter;

  constructor(private readonly opts: EmailNotifierOptions) {
    const t = opts.smtp.timeoutMs ?? 10_000;
    this.name = `email ${opts.smtp.host}:${opts.smtp.port}`;
    this.transport = nodemailer.createTransport({
      host: opts.smtp.host,
      port: opts.smtp.port,
      secure: opts.smtp.secure ?? false,
      ...(opts.smtp.user ? { auth: { user: opts.smtp.user, pass: opts.smtp.pass ?? '' } } : {}),
      connectionTimeout: t,
      greetingTimeout: t,
      socketTimeout: t,
    });
  }

  async send(event: HaEvent): Promise<void> {
    try {
      await this.transport.sendMail({
        from: this.opts.from,
        to: this.opts.to,
        subject: emailSubject(event),
        text: emailBody(event),
        headers: { 'X-Nimbus-HA-Event': event.type },
      });
    } catch (err) {
      throw new HaError(
        'NOTIFY_FAILED',
        `mail for event ${event.type} via ${this.opts.smtp.host}:${this.opts.smtp.port} failed: ` +
          `${errorMessage(err)}; check the smtp settings of notify.email`,
      );
    }
  }

  close(): void {
    this.transport.close();
  }
}
