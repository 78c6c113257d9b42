import { appendFile, mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { HaEvent, Notifier } from '../ports.js';
import { errorMessage } from '../errors.js';

export type EventInput = Omit<HaEvent, 'node' | 'epoch' | 'time'> & { epoch?: number };
type Listener = (e: HaEvent) => void;

/**
 * The event bus: every event goes to the JSONL history file (append, in order), a bounded in-memory
 * ring for /events, listeners (metrics, logs), and the notifier queue (in order, one at a time).
 */
export class EventBus {
  private readonly ring: HaEvent[] = [];
  private readonly listeners: Listener[] = [];
  private writeChain: Promise<void> = Promise.resolve();
  private notifyChain: Promise<void> = Promise.resolve();
  private pendingNotifications = 0;

  constructor(
    private readonly node: string,
    private readonly epochOf: () => number,
    private readonly opts: {
      historyFile?: string;
      ringSize?: number;
      notifiers?: Notifier[];
      /** Which event types reach notifiers (all when undefined). */
      notifyTypes?: string[];
      nowMs?: () => number;
      onNotifyError?: (notifier: string, event: HaEvent, err: unknown) => void;
    } = {},
  ) {}

  on(listener: Listener): void {
    this.listeners.push(listener);
  }

  emit(input: EventInput): HaEvent {
    const event: HaEvent = {
      type: input.type,
      node: this.node,
      epoch: input.epoch ?? this.epochOf(),
      time: new Date(this.opts.nowMs ? this.opts.nowMs() : Date.now()).toISOString(),
      severity: input.severity,
      message: input.message,
      ...(input.details ? { details: input.details } : {}),
    };
    this.ring.push(event);
    const max = this.opts.ringSize ?? 500;
    if (this.ring.length > max) this.ring.splice(0, this.ring.length - max);
    for (const l of this.listeners) {
      try {
        l(event);
      } catch {
        /* a listener must never break event recording */
      }
    }
    const file = this.opts.historyFile;
    if (file) {
      const line = JSON.stringify(event) + '\n';
      this.writeChain = this.writeChain
        .then(async () => {
          await mkdir(dirname(file), { recursive: true });
          await appendFile(file, line);
        })
        .catch(() => undefined);
    }
    const notifiers = this.opts.notifiers ?? [];
    if (notifiers.length && (!this.opts.notifyTypes || this.opts.notifyTypes.includes(event.type))) {
      this.pendingNotifications++;
      this.notifyChain = this.notifyChain.then(async () => {
        for (const n of notifiers) {
          try {
            await n.send(event);
          } catch (err) {
            this.opts.onNotifyError?.(n.name, event, err);
          }
        }
        this.pendingNotifications--;
      });
    }
    return event;
  }

  /** Most recent events, oldest first, optionally only those after a given ISO time or of some types. */
  recent(opts: { limit?: number; types?: string[] } = {}): HaEvent[] {
    let list = this.ring;
    if (opts.types?.length) list = list.filter((e) => opts.types!.includes(e.type));
    return list.slice(-(opts.limit ?? 100));
  }

  /** Resolves when the history file and notifier queue have caught up. */
  async flush(): Promise<void> {
    await this.writeChain;
    await this.notifyChain;
  }

  get notificationsPending(): number {
    return this.pendingNotifications;
  }
}

export { errorMessage };
