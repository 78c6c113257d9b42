import type { Cluster } from '../../fixtures/cluster.js';
import { sleep } from './wait.js';

/** Polls both nodes' /primary every 15 ms and counts samples where both answered 200. */
export function doublePrimaryPoller(c: Cluster) {
  let stop = false;
  let both = 0;
  let samples = 0;
  const ask = (n: 'a' | 'b') => c.request(n, '/primary', { timeoutMs: 300 }).then((r) => r.status === 200, () => false);
  const loop = (async () => {
    const end = Date.now() + 240_000;
    while (!stop && Date.now() < end) {
      const [a, b] = await Promise.all([ask('a'), ask('b')]);
      samples++;
      if (a && b) both++;
      await sleep(15);
    }
  })();
  return {
    async done() {
      stop = true;
      await loop;
      return { both, samples };
    },
  };
}
