import { performance } from 'node:perf_hooks';
import { setTimeout as delay } from 'node:timers/promises';
import type { Clock } from './ports.js';
import { everyOnGrid } from './util/cadence.js';

/** The real clock: wall time from Date, durations from the monotonic performance clock. */
export const systemClock: Clock = {
  nowMs: () => Date.now(),
  monotonicMs: () => performance.now(),
  sleep: async (ms, signal) => {
    try {
      await delay(ms, undefined, signal ? { signal } : undefined);
    } catch (err) {
      if ((err as Error).name !== 'AbortError') throw err;
    }
  },
  timeout: (ms, fn) => {
    const t = setTimeout(fn, ms);
    return () => clearTimeout(t);
  },
  every: (periodMs, fn, opts) => {
    const t = everyOnGrid(periodMs, fn, opts?.unref ? { unref: true } : {});
    return () => t.stop();
  },
};
