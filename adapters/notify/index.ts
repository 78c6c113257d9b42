/**
 * Builds the notifiers of the `notify` config section, for the EventBus options
 * (`notifiers`, `notifyTypes`).
 */
import type { Notifier, NotifyConfig } from '../../src/ports.js';
import { EmailNotifier } from './email.js';
import { WebhookNotifier } from './webhook.js';

export { EmailNotifier, WebhookNotifier };

export function createNotifiers(config: NotifyConfig): {
  notifiers: Notifier[];
  notifyTypes: string[] | undefined;
  /** Releases SMTP connections at shutdown. */
  close(): void;
} {
  const notifiers: Notifier[] = [];
  const emails: EmailNotifier[] = [];
  if (config.webhook) notifiers.push(new WebhookNotifier(config.webhook));
  if (config.email) {
    const e = new EmailNotifier(config.email);
    emails.push(e);
    notifiers.push(e);
  }
  return { notifiers, notifyTypes: config.events, close: () => emails.forEach((e) => e.close()) };
}
