import { performance } from 'node:perf_hooks';
import { setTimeout as delay } from 'node:timers/promises';
import type { Clock } from './ports.js';

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
};
