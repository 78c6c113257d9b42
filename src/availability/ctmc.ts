/**
 * Availability model of HA-OSCAR (Thanakornworakij et al.): a continuous-time Markov chain over
 * (operating servers, operating switches). The service is up while at least one server and one switch
 * operate. Assumptions, as in the paper: exponential failure and repair times; each operating component
 * fails independently (a state with k operating servers leaves at k·λv); one repair at a time per kind
 * (rate μ for servers, β for switches, servers and switches repaired in parallel); a system that is down
 * suffers no further failures.
 */
import { stationaryDistribution } from './linear.js';

export { fromHistory, type ObservedAvailability, type ObservedIncident } from './observed.js';

/** Rates per hour. */
export interface AvailabilityParams {
  /** Failure rate of one server (host + virtualization layer), per hour. */
  lambdaV: number;
  /** Failure rate of one switch, per hour. */
  lambdaW: number;
  /** Repair rate of a server, per hour (1 / mean time to repair). */
  mu: number;
  /** Repair rate of a switch, per hour. */
  beta: number;
}

/** The parameters of the paper's comparison (section 6.3). */
export const paperParams: AvailabilityParams = { lambdaV: 0.001, lambdaW: 0.0005, mu: 0.5, beta: 1.0 };

export const HOURS_PER_YEAR = 8760;

export interface ChainState {
  servers: number;
  switches: number;
  up: boolean;
}

export interface Chain {
  states: ChainState[];
  /** Infinitesimal generator: q[i][j] is the rate from state i to j, rows sum to 0. */
  generator: number[][];
}

export interface AvailabilityResult {
  name: string;
  servers: number;
  switches: number;
  availability: number;
  unavailability: number;
  downtimeHoursPerYear: number;
  downtimeMinutesPerYear: number;
  /** −log10(unavailability): 5 means "five nines". */
  nines: number;
  /** Transitions from an up state to a down state per year. */
  outagesPerYear: number;
  /** Mean length of one outage, in hours. */
  meanOutageHours: number;
  states: Array<ChainState & { probability: number }>;
}

function checkParams(p: AvailabilityParams): void {
  for (const [k, v] of Object.entries(p)) {
    if (!Number.isFinite(v) || v <= 0) throw new Error(`${k} must be a positive rate per hour, got ${v}`);
  }
}

/** Builds the chain for `servers` redundant servers and `switches` redundant switches. */
export function buildChain(servers: number, switches: number, p: AvailabilityParams): Chain {
  if (!Number.isInteger(servers) || !Number.isInteger(switches) || servers < 1 || switches < 1) {
    throw new Error('servers and switches must be integers >= 1');
  }
  checkParams(p);
  const key = (s: number, w: number) => `${s},${w}`;
  const index = new Map<string, number>();
  const states: ChainState[] = [];
  const edges: Array<[number, number, number]> = [];
  const visit = (s: number, w: number): number => {
    const k = key(s, w);
    let i = index.get(k);
    if (i === undefined) {
      i = states.length;
      index.set(k, i);
      states.push({ servers: s, switches: w, up: s >= 1 && w >= 1 });
      queue.push(i);
    }
    return i;
  };
  const queue: number[] = [];
  // Only states reachable from "all operating" belong to the chain (e.g. (0,0) never occurs).
  visit(servers, switches);
  for (let head = 0; head < queue.length; head++) {
    const i = queue[head];
    const { servers: s, switches: w, up } = states[i];
    if (up) {
      edges.push([i, visit(s - 1, w), s * p.lambdaV]);
      edges.push([i, visit(s, w - 1), w * p.lambdaW]);
    }
    if (s < servers) edges.push([i, visit(s + 1, w), p.mu]);
    if (w < switches) edges.push([i, visit(s, w + 1), p.beta]);
  }
  const n = states.length;
  const q = Array.from({ length: n }, () => new Array<number>(n).fill(0));
  for (const [from, to, rate] of edges) q[from][to] += rate;
  for (let i = 0; i < n; i++) q[i][i] = -q[i].reduce((a, r, j) => (j === i ? a : a + r), 0);
  return { states, generator: q };
}

/** Solves the chain and summarises availability and downtime per year. */
export function solveAvailability(
  servers: number,
  switches: number,
  p: AvailabilityParams,
  name = `${servers} server(s), ${switches} switch(es)`,
): AvailabilityResult {
  const chain = buildChain(servers, switches, p);
  const pi = stationaryDistribution(chain.generator);
  let availability = 0;
  let outageRatePerHour = 0;
  chain.states.forEach((st, i) => {
    if (!st.up) return;
    availability += pi[i];
    chain.states.forEach((to, j) => {
      if (!to.up) outageRatePerHour += pi[i] * chain.generator[i][j];
    });
  });
  const unavailability = Math.max(0, 1 - availability);
  const downtimeHoursPerYear = unavailability * HOURS_PER_YEAR;
  return {
    name,
    servers,
    switches,
    availability,
    unavailability,
    downtimeHoursPerYear,
    downtimeMinutesPerYear: downtimeHoursPerYear * 60,
    nines: unavailability > 0 ? -Math.log10(unavailability) : Infinity,
    outagesPerYear: outageRatePerHour * HOURS_PER_YEAR,
    meanOutageHours: outageRatePerHour > 0 ? unavailability / outageRatePerHour : 0,
    states: chain.states.map((st, i) => ({ ...st, probability: pi[i] })),
  };
}

/** The paper's two configurations: a single head node, and an active/standby pair with redundant switches. */
export function compareConfigurations(p: AvailabilityParams = paperParams): {
  single: AvailabilityResult;
  pair: AvailabilityResult;
} {
  return {
    single: solveAvailability(1, 1, p, 'single head node (1 server, 1 switch)'),
    pair: solveAvailability(2, 2, p, 'active/standby pair (2 servers, 2 switches)'),
  };
}
