/**
 * GET /availability: the HA-OSCAR CTMC model for the published rates (a single head node and the pair)
 * next to the availability this node's event history shows (src/availability/observed.ts).
 *
 * The history is read by one request at a time (the others share its answer) and at most once per
 * CACHE_MS; an outage or recovery event makes the next request read it again, and a reading that such
 * an event overtook is answered but not kept.
 */
import type { RequestHandler } from 'express';
import { compareConfigurations, fromHistory, paperParams } from '../availability/ctmc.js';
import type { EventBus } from '../events/bus.js';
import type { HaEvent } from '../ports.js';

/** Events that change the observed availability. */
const OUTAGE_EVENT_TYPES = new Set(['failover', 'takeover', 'service_failed', 'service_recovered']);

/** How long a reading of the history is reused. */
const CACHE_MS = 30_000;

/** Events of `a` followed by those of `b` that `a` does not hold (same time, type and message). */
function mergeEvents(a: HaEvent[], b: HaEvent[]): HaEvent[] {
  const key = (e: HaEvent) => `${e.time}|${e.type}|${e.message}`;
  const have = new Set(a.map(key));
  return [...a, ...b.filter((e) => !have.has(key(e)))];
}

/** `history` reads the node's history file (default: only the events kept in memory). */
export function availabilityHandler(bus: EventBus, history?: () => Promise<HaEvent[]>): RequestHandler {
  type Observed = ReturnType<typeof fromHistory>;
  let observed: { at: number; value: Observed } | null = null;
  let reading: Promise<Observed> | null = null;
  let generation = 0;
  bus.subscribe((e) => {
    if (OUTAGE_EVENT_TYPES.has(e.type)) {
      generation++;
      observed = null;
    }
  });
  const read = async (): Promise<Observed> => {
    const gen = generation;
    // The history file, and what is in memory but may not be written yet.
    const recent = bus.recent({ limit: 1000 });
    const value = fromHistory(history ? mergeEvents(await history(), recent) : recent);
    if (gen === generation) observed = { at: Date.now(), value };
    return value;
  };
  return async (_req, res, next) => {
    try {
      let value = observed && Date.now() - observed.at <= CACHE_MS ? observed.value : null;
      if (!value) {
        reading ??= read().finally(() => (reading = null));
        value = await reading;
      }
      const { incidents, ...summary } = value;
      res.set('cache-control', 'no-store').json({ params: paperParams, model: compareConfigurations(paperParams), observed: { ...summary, incidents: incidents.slice(-50) } });
    } catch (err) {
      next(err);
    }
  };
}
