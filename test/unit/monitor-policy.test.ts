import { describe, expect, it } from 'vitest';
import {
  backoffDelayMs,
  defaultPolicyConfig,
  evaluateProbe,
  initialPolicyState,
  type PolicyAction,
  type PolicyMode,
} from '../../src/monitor/policy.js';
import type { PolicyConfig } from '../../src/monitor/config.js';

/** A probe outcome at a time: 'F' = failed, 'S' = ok. */
type Step = [ok: 'S' | 'F', atMs: number, mode?: PolicyMode];

function run(steps: Step[], config: PolicyConfig = defaultPolicyConfig) {
  let state = initialPolicyState();
  const actions: PolicyAction[] = [];
  const reasons: string[] = [];
  for (const [ok, at, mode] of steps) {
    const r = evaluateProbe(state, ok === 'S', at, config, mode ?? 'active');
    state = r.state;
    actions.push(r.decision.action);
    reasons.push(r.decision.reason);
  }
  return { actions, reasons, state };
}

/** Probes every 5 s starting at t=0. */
const every5s = (pattern: string, mode?: PolicyMode): Step[] =>
  [...pattern].map((c, i) => [c as 'S' | 'F', i * 5_000, mode]);

const fast: PolicyConfig = { ...defaultPolicyConfig, backoff: { baseMs: 1, maxMs: 1 } };

describe('restart policy', () => {
  const table: Array<{ name: string; steps: Step[]; config?: PolicyConfig; expected: PolicyAction[] }> = [
    { name: 'healthy service: nothing to do', steps: every5s('SSS'), expected: ['none', 'none', 'none'] },
    {
      name: 'one failed probe is below the threshold of 2',
      steps: every5s('SFS'),
      expected: ['none', 'none', 'none'],
    },
    {
      name: 'two failures in a row restart the service',
      steps: every5s('FF'),
      expected: ['none', 'restart'],
    },
    {
      name: 'after a restart, two successes are needed to count as recovered',
      steps: every5s('FFSS'),
      expected: ['none', 'restart', 'none', 'recovered'],
    },
    {
      name: 'flapping probe after a restart does not flap the state (hysteresis)',
      steps: every5s('FFSFSFSS'),
      expected: ['none', 'restart', 'none', 'none', 'none', 'none', 'none', 'recovered'],
    },
    {
      name: 'four restarts then escalate (default maxRestarts 4), no back-off in the way',
      config: fast,
      steps: every5s('FFFFFFFFFF'),
      expected: ['none', 'restart', 'none', 'restart', 'none', 'restart', 'none', 'restart', 'none', 'escalate'],
    },
    {
      name: 'after escalating, further failures wait for the handover',
      config: { ...fast, maxRestarts: 1 },
      steps: every5s('FFFFFF'),
      expected: ['none', 'restart', 'none', 'escalate', 'none', 'none'],
    },
    {
      name: 'maxRestarts 0 escalates at once',
      config: { ...fast, maxRestarts: 0 },
      steps: every5s('FF'),
      expected: ['none', 'escalate'],
    },
    {
      name: 'standby node only monitors',
      steps: every5s('FFFF', 'standby'),
      expected: ['none', 'none', 'none', 'none'],
    },
    {
      name: 'maintenance mode only monitors',
      steps: every5s('FFF', 'paused'),
      expected: ['none', 'none', 'none'],
    },
    {
      name: 'a node that becomes active while the service is down restarts it',
      steps: [
        ['F', 0, 'standby'],
        ['F', 5_000, 'standby'],
        ['F', 10_000, 'active'],
      ],
      expected: ['none', 'none', 'restart'],
    },
    {
      name: 'back-off: second restart waits baseMs (5 s) after the first',
      config: { ...defaultPolicyConfig, failuresBeforeAction: 1 },
      steps: [
        ['F', 0],
        ['F', 1_000],
        ['F', 4_999],
        ['F', 5_000],
        ['F', 9_000],
        ['F', 15_000],
      ],
      // third restart needs 10 s after the second (at 5 s): refused at 9 s and allowed at 15 s
      expected: ['restart', 'none', 'none', 'restart', 'none', 'restart'],
    },
    {
      name: 'restarts older than the window no longer count',
      config: { ...fast, maxRestarts: 1, windowMs: 60_000 },
      steps: [
        ['F', 0],
        ['F', 1_000],
        ['S', 2_000],
        ['S', 3_000],
        ['F', 100_000],
        ['F', 101_000],
      ],
      expected: ['none', 'restart', 'none', 'recovered', 'none', 'restart'],
    },
    {
      name: 'restarts inside the window count across incidents',
      config: { ...fast, maxRestarts: 1, windowMs: 600_000 },
      steps: [
        ['F', 0],
        ['F', 1_000],
        ['S', 2_000],
        ['S', 3_000],
        ['F', 100_000],
        ['F', 101_000],
      ],
      expected: ['none', 'restart', 'none', 'recovered', 'none', 'escalate'],
    },
    {
      name: 'recoverAfter 3 and failuresBeforeAction 3',
      config: { ...fast, recoverAfter: 3, failuresBeforeAction: 3 },
      steps: every5s('FFFSSS'),
      expected: ['none', 'none', 'restart', 'none', 'none', 'recovered'],
    },
  ];

  it.each(table)('$name', ({ steps, config, expected }) => {
    expect(run(steps, config).actions).toEqual(expected);
  });

  it('recovery reports the incident duration from the first failed probe and the restarts', () => {
    let state = initialPolicyState();
    const seq: Array<[boolean, number]> = [
      [false, 10_000],
      [false, 15_000],
      [true, 20_000],
      [true, 25_000],
    ];
    let last;
    for (const [ok, t] of seq) {
      last = evaluateProbe(state, ok, t, defaultPolicyConfig, 'active');
      state = last.state;
    }
    expect(last!.decision).toMatchObject({ action: 'recovered', incidentDurationMs: 15_000, incidentRestarts: 1 });
    expect(last!.decision.reason).toMatch(/incident lasted 15 s with 1 restart$/);
  });

  it('marks the probe that opens an incident, once', () => {
    let state = initialPolicyState();
    const opened: boolean[] = [];
    for (const [i, ok] of [false, false, false, false].entries()) {
      const r = evaluateProbe(state, ok, i * 5_000, defaultPolicyConfig, 'standby');
      state = r.state;
      opened.push(r.decision.incidentOpened);
    }
    expect(opened).toEqual([false, true, false, false]);
    expect(state.healthy).toBe(false);
  });

  it('gives one-sentence reasons that name the rule applied', () => {
    const { reasons } = run(every5s('FFFFFFFFFF'), fast);
    expect(reasons[1]).toBe('2 failed probes in a row; restart 1 of 4 within the window');
    expect(reasons[9]).toMatch(/after 4 restarts within 600 s; restarts exhausted, escalating to a handover$/);
    expect(run(every5s('FF', 'standby')).reasons[1]).toMatch(/standby, so monitoring only/);
  });

  it('does not modify the state passed in', () => {
    const s0 = initialPolicyState();
    const frozen = JSON.stringify(s0);
    evaluateProbe(s0, false, 0, { ...defaultPolicyConfig, failuresBeforeAction: 1 }, 'active');
    expect(JSON.stringify(s0)).toBe(frozen);
  });

  it.each([
    [0, 0],
    [1, 5_000],
    [2, 10_000],
    [3, 20_000],
    [4, 40_000],
    [5, 60_000],
    [50, 60_000],
  ])('back-off after %i restarts is %i ms', (n, ms) => {
    expect(backoffDelayMs(n, { baseMs: 5_000, maxMs: 60_000 })).toBe(ms);
  });
});
