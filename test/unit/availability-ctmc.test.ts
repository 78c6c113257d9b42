import { describe, expect, it } from 'vitest';
import { buildChain, compareConfigurations, paperParams, solveAvailability } from '../../src/availability/ctmc.js';
import { solveLinear, stationaryDistribution } from '../../src/availability/linear.js';

describe('linear algebra', () => {
  it('solves a system that needs pivoting', () => {
    const x = solveLinear(
      [
        [0, 2, 1],
        [1, 1, 1],
        [2, 1, 0],
      ],
      [5, 4, 4],
    );
    [1, 2, 1].forEach((v, i) => expect(x[i]).toBeCloseTo(v, 12));
  });
  it('rejects a singular matrix', () => {
    expect(() =>
      solveLinear(
        [
          [1, 2],
          [2, 4],
        ],
        [1, 2],
      ),
    ).toThrow(/singular/);
  });
  it('finds the stationary distribution of a two-state chain', () => {
    // up -> down at 1, down -> up at 3: π = (3/4, 1/4)
    const pi = stationaryDistribution([
      [-1, 1],
      [3, -3],
    ]);
    expect(pi[0]).toBeCloseTo(0.75, 12);
    expect(pi[1]).toBeCloseTo(0.25, 12);
  });
});

describe('HA-OSCAR availability model', () => {
  it('has the 8 states of the paper for the pair, with its up/down classification', () => {
    const { states, generator } = buildChain(2, 2, paperParams);
    const table = states.map((s) => `${s.servers}${s.switches}${s.up ? 'U' : 'D'}`).sort();
    expect(table).toEqual(['01D', '02D', '10D', '11U', '12U', '20D', '21U', '22U']);
    for (const row of generator) expect(row.reduce((a, b) => a + b, 0)).toBeCloseTo(0, 12);
    const at = (s: number, w: number) => states.findIndex((x) => x.servers === s && x.switches === w);
    const q = (a: [number, number], b: [number, number]) => generator[at(...a)][at(...b)];
    expect(q([2, 2], [1, 2])).toBeCloseTo(2 * paperParams.lambdaV, 15); // both servers may fail
    expect(q([2, 2], [2, 1])).toBeCloseTo(2 * paperParams.lambdaW, 15);
    expect(q([1, 1], [1, 2])).toBe(paperParams.beta);
    expect(q([1, 1], [2, 1])).toBe(paperParams.mu);
    expect(q([2, 0], [1, 0])).toBe(0); // down: no further failures
    expect(q([1, 0], [2, 0])).toBe(paperParams.mu); // repairs go on while down
  });

  it('has 3 states for the single head node', () => {
    const { states } = buildChain(1, 1, paperParams);
    expect(states.map((s) => [s.servers, s.switches, s.up])).toEqual([
      [1, 1, true],
      [0, 1, false],
      [1, 0, false],
    ]);
  });

  it("reproduces the paper's pair figures: 0.99999 and 4.45 min/yr", () => {
    const { pair } = compareConfigurations(paperParams);
    expect(pair.availability).toBeCloseTo(0.99999, 5);
    expect(pair.downtimeMinutesPerYear).toBeCloseTo(4.45, 2);
    expect(pair.nines).toBeGreaterThan(5);
    expect(pair.states.reduce((a, s) => a + s.probability, 0)).toBeCloseTo(1, 12);
  });

  it('single node: the stated model gives 0.9975 and 21.85 h/yr (the paper prints 0.996 and 39.2 h)', () => {
    const { single } = compareConfigurations(paperParams);
    // closed form of the 3-state chain: A = 1 / (1 + λv/μ + λw/β)
    const closed = 1 / (1 + paperParams.lambdaV / paperParams.mu + paperParams.lambdaW / paperParams.beta);
    expect(single.availability).toBeCloseTo(closed, 12);
    expect(single.availability).toBeCloseTo(0.997506, 6);
    expect(single.downtimeHoursPerYear).toBeCloseTo(21.85, 2);
  });

  it("recovers the paper's single-node 39.2 h/yr only when the server failure rate is doubled", () => {
    const r = solveAvailability(1, 1, { ...paperParams, lambdaV: 2 * paperParams.lambdaV });
    expect(r.downtimeHoursPerYear).toBeCloseTo(39.24, 2);
    expect(r.availability).toBeCloseTo(0.996, 3);
  });

  it('reports outage frequency consistent with availability', () => {
    const { single } = compareConfigurations(paperParams);
    // single node: every failure is an outage, rate (λv + λw) while up
    expect(single.outagesPerYear).toBeCloseTo(single.availability * 0.0015 * 8760, 9);
    expect(single.meanOutageHours * single.outagesPerYear).toBeCloseTo(single.downtimeHoursPerYear, 9);
  });

  it('rejects invalid rates and sizes', () => {
    expect(() => solveAvailability(2, 2, { ...paperParams, mu: 0 })).toThrow(/mu must be a positive rate/);
    expect(() => buildChain(0, 1, paperParams)).toThrow(/>= 1/);
  });
});
