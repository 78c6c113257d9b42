/**
 * `nimbus-ha availability`: the HA-OSCAR CTMC model for the given rates, and optionally the availability
 * observed in an event history file (JSON lines of HaEvent).
 */
import { readFile } from 'node:fs/promises';
import { InvalidArgumentError, type Command } from 'commander';
import {
  compareConfigurations,
  fromHistory,
  paperParams,
  type AvailabilityParams,
  type AvailabilityResult,
  type ObservedAvailability,
} from '../availability/ctmc.js';
import { HaError, errorMessage } from '../errors.js';
import type { HaEvent } from '../ports.js';

export interface AvailabilityReport {
  params: AvailabilityParams;
  model: { single: AvailabilityResult; pair: AvailabilityResult };
  observed?: ObservedAvailability;
}

function positiveRate(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError('expected a positive rate per hour, e.g. 0.001');
  return n;
}

/** Parses a JSONL history; blank lines are skipped, a malformed line is an error naming its number. */
export function parseHistoryLines(text: string, source = 'history'): HaEvent[] {
  const events: HaEvent[] = [];
  text.split('\n').forEach((line, i) => {
    if (!line.trim()) return;
    let e: unknown;
    try {
      e = JSON.parse(line);
    } catch (err) {
      throw new HaError('USAGE', `${source}:${i + 1} is not JSON (${errorMessage(err)}); expected one event per line`);
    }
    const ev = e as Partial<HaEvent>;
    if (typeof ev !== 'object' || ev === null || typeof ev.type !== 'string' || typeof ev.time !== 'string') {
      throw new HaError('USAGE', `${source}:${i + 1} is not an event (needs "type" and "time")`);
    }
    events.push(ev as HaEvent);
  });
  return events;
}

export function availabilityReport(params: AvailabilityParams, events?: HaEvent[]): AvailabilityReport {
  return {
    params,
    model: compareConfigurations(params),
    ...(events ? { observed: fromHistory(events) } : {}),
  };
}

function downtime(hours: number): string {
  if (hours >= 1) return `${hours.toFixed(2)} h/yr`;
  if (hours * 60 >= 1) return `${(hours * 60).toFixed(2)} min/yr`;
  return `${(hours * 3600).toFixed(1)} s/yr`;
}

const pad = (s: string, n: number) => s.padEnd(n);

/** Human-readable form of the report. */
export function formatAvailabilityReport(r: AvailabilityReport): string {
  const p = r.params;
  const lines = [
    `CTMC availability model (λv=${p.lambdaV}/h per server, λw=${p.lambdaW}/h per switch, ` +
      `μ=${p.mu}/h, β=${p.beta}/h)`,
    '',
    `${pad('configuration', 46)}${pad('availability', 14)}${pad('downtime', 16)}${pad('nines', 7)}outages/yr`,
  ];
  for (const m of [r.model.single, r.model.pair]) {
    lines.push(
      `${pad(m.name, 46)}${pad(m.availability.toFixed(7), 14)}${pad(downtime(m.downtimeHoursPerYear), 16)}` +
        `${pad(m.nines.toFixed(2), 7)}${m.outagesPerYear.toFixed(3)}`,
    );
  }
  const o = r.observed;
  if (o) {
    const num = (v: number | null, digits: number) => (v === null ? 'n/a' : v.toFixed(digits));
    lines.push(
      '',
      `observed (${o.windowStart ?? '?'} .. ${o.windowEnd ?? '?'}, ${o.windowHours.toFixed(2)} h)`,
      `  outages       ${o.failures}${o.incidents.some((i) => i.open) ? ' (some still open)' : ''}`,
      `  downtime      ${o.downtimeHours.toFixed(4)} h`,
      `  availability  ${num(o.availability, 7)}`,
      `  MTTF          ${num(o.mttfHours, 3)} h`,
      `  MTTR          ${num(o.mttrHours, 4)} h`,
    );
  }
  return lines.join('\n') + '\n';
}

export function registerAvailabilityCommand(program: Command): void {
  program
    .command('availability')
    .description('availability and yearly downtime of a single head node vs an active/standby pair (CTMC model)')
    .option('--lambda-v <rate>', 'server failure rate per hour', positiveRate, paperParams.lambdaV)
    .option('--lambda-w <rate>', 'switch failure rate per hour', positiveRate, paperParams.lambdaW)
    .option('--mu <rate>', 'server repair rate per hour', positiveRate, paperParams.mu)
    .option('--beta <rate>', 'switch repair rate per hour', positiveRate, paperParams.beta)
    .option('--from-history <file>', 'also report availability observed in an event history (JSON lines)')
    .option('--json', 'print JSON instead of a table')
    .action(
      async (opts: {
        lambdaV: number;
        lambdaW: number;
        mu: number;
        beta: number;
        fromHistory?: string;
        json?: boolean;
      }) => {
        let events: HaEvent[] | undefined;
        if (opts.fromHistory) {
          let text: string;
          try {
            text = await readFile(opts.fromHistory, 'utf8');
          } catch (err) {
            throw new HaError('USAGE', `cannot read history file ${opts.fromHistory}: ${errorMessage(err)}`);
          }
          events = parseHistoryLines(text, opts.fromHistory);
        }
        const report = availabilityReport(
          { lambdaV: opts.lambdaV, lambdaW: opts.lambdaW, mu: opts.mu, beta: opts.beta },
          events,
        );
        process.stdout.write(opts.json ? JSON.stringify(report, null, 2) + '\n' : formatAvailabilityReport(report));
      },
    );
}
