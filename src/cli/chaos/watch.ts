/**
 * The independent observers of the chaos harness: `/primary` on both nodes every 10 ms (two 200s at one
 * instant is a double-primary sample) and each node's epoch from `/status` (it must never go backwards,
 * restarts included).
 */
import { sleep } from './load.js';

export interface RoleSample {
  t: number;
  a: boolean;
  b: boolean;
}

export class RoleWatch {
  samples = 0;
  doublePrimary = 0;
  /** Instants (Date.now) of double-primary samples, for the cycle that saw them. */
  readonly doubleAt: number[] = [];
  readonly epochRegressions: { node: string; from: number; to: number; at: number }[] = [];
  private readonly lastEpoch: Record<string, number> = {};
  /** Last time (Date.now) each node answered /primary 200. */
  readonly lastPrimaryAt: Record<'a' | 'b', number> = { a: 0, b: 0 };
  private stopped = false;
  private timer: NodeJS.Timeout | null = null;
  private loops: Promise<void>[] = [];

  constructor(private readonly urls: Record<'a' | 'b', string>, private readonly everyMs = 10) {}

  private ask(n: 'a' | 'b'): Promise<boolean> {
    return fetch(`${this.urls[n]}/primary`, { method: 'HEAD', signal: AbortSignal.timeout(250) }).then((r) => r.status === 200, () => false);
  }

  start(): void {
    // A sample starts every `everyMs` whatever the previous ones are doing (up to 4 in flight), so a
    // slow answer does not stretch the sampling interval.
    let inFlight = 0;
    this.timer = setInterval(() => {
      if (inFlight >= 4) return;
      inFlight++;
      const t0 = Date.now();
      void Promise.all([this.ask('a'), this.ask('b')]).then(([a, b]) => {
        inFlight--;
        this.samples++;
        if (a) this.lastPrimaryAt.a = Date.now();
        if (b) this.lastPrimaryAt.b = Date.now();
        if (a && b) {
          this.doublePrimary++;
          this.doubleAt.push(t0);
        }
      });
    }, this.everyMs);
    this.loops.push(
      (async () => {
        while (!this.stopped) {
          for (const n of ['a', 'b'] as const) {
            try {
              const s = (await (await fetch(`${this.urls[n]}/status`, { signal: AbortSignal.timeout(500) })).json()) as { epoch?: number };
              if (typeof s.epoch === 'number') {
                const prev = this.lastEpoch[n];
                if (prev !== undefined && s.epoch < prev) this.epochRegressions.push({ node: n, from: prev, to: s.epoch, at: Date.now() });
                this.lastEpoch[n] = Math.max(prev ?? 0, s.epoch);
              }
            } catch {
              /* down */
            }
          }
          await sleep(100);
        }
      })(),
    );
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    await Promise.all(this.loops);
  }
}
