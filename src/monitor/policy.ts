/**
 * The restart policy of one service, as a pure function: probe outcome + previous state + time in,
 * decision + next state out. No I/O and no clock reads, so every rule is checked by table tests.
 */
import type { PolicyConfig } from './config.js';

export type PolicyAction = 'none' | 'restart' | 'escalate' | 'recovered';

/**
 * `active`: this node is primary and may restart and escalate. `standby`: probe only.
 * `paused`: maintenance mode, probe only.
 */
export type PolicyMode = 'active' | 'standby' | 'paused';

export interface PolicyState {
  /** Whether the service counts as healthy (changes only after the thresholds, see hysteresis). */
  healthy: boolean;
  /** Failed probes in a row since the last success or the last restart. */
  consecutiveFailures: number;
  /** Successful probes in a row. */
  consecutiveSuccesses: number;
  /** Time of the first failed probe of the current run of failures. */
  firstFailureMs: number | null;
  /** Start of the open incident (first failed probe), or null when healthy. */
  incidentStartMs: number | null;
  /** Restarts done during the open incident. */
  incidentRestarts: number;
  /** Times of restarts that may still be inside the window (pruned on each evaluation). */
  restartTimesMs: number[];
  lastRestartMs: number | null;
  /** Set once restarts are exhausted; cleared on recovery. */
  escalated: boolean;
}

export interface PolicyDecision {
  action: PolicyAction;
  /** One sentence saying what was decided and why. */
  reason: string;
  /** True on the probe that turned the service from healthy to failed. */
  incidentOpened: boolean;
  /** On `recovered`: time from the first failed probe to recovery. */
  incidentDurationMs?: number;
  /** On `recovered`: restarts done during the incident. */
  incidentRestarts?: number;
}

export const defaultPolicyConfig: PolicyConfig = {
  failuresBeforeAction: 2,
  maxRestarts: 4,
  windowMs: 600_000,
  backoff: { baseMs: 5_000, maxMs: 60_000 },
  recoverAfter: 2,
};

export function initialPolicyState(): PolicyState {
  return {
    healthy: true,
    consecutiveFailures: 0,
    consecutiveSuccesses: 0,
    firstFailureMs: null,
    incidentStartMs: null,
    incidentRestarts: 0,
    restartTimesMs: [],
    lastRestartMs: null,
    escalated: false,
  };
}

/** Wait required after the last restart before the next one, given restarts already in the window. */
export function backoffDelayMs(restartsInWindow: number, backoff: PolicyConfig['backoff']): number {
  if (restartsInWindow <= 0) return 0;
  const exp = Math.min(restartsInWindow - 1, 30);
  return Math.min(backoff.maxMs, backoff.baseMs * 2 ** exp);
}

/** Restarts whose time lies within the window ending at nowMs. */
export function restartsInWindow(state: PolicyState, nowMs: number, windowMs: number): number {
  return state.restartTimesMs.filter((t) => nowMs - t < windowMs).length;
}

const secs = (ms: number) => `${Math.round(ms / 100) / 10} s`;
const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;

/** Applies one probe outcome. Returns the next state (the input is not modified) and the decision. */
export function evaluateProbe(
  prev: PolicyState,
  ok: boolean,
  nowMs: number,
  config: PolicyConfig,
  mode: PolicyMode,
): { state: PolicyState; decision: PolicyDecision } {
  const s: PolicyState = {
    ...prev,
    restartTimesMs: prev.restartTimesMs.filter((t) => nowMs - t < config.windowMs),
  };
  return ok ? onSuccess(s, nowMs, config) : onFailure(s, nowMs, config, mode);
}

function onSuccess(s: PolicyState, nowMs: number, config: PolicyConfig) {
  s.consecutiveFailures = 0;
  s.firstFailureMs = null;
  s.consecutiveSuccesses += 1;
  if (s.healthy) {
    return { state: s, decision: { action: 'none' as const, reason: 'probe ok, service healthy', incidentOpened: false } };
  }
  if (s.consecutiveSuccesses < config.recoverAfter) {
    const reason =
      `probe ok (${s.consecutiveSuccesses} of ${config.recoverAfter} successes needed), ` +
      'service still counted as failed';
    return { state: s, decision: { action: 'none' as const, reason, incidentOpened: false } };
  }
  const duration = s.incidentStartMs === null ? 0 : nowMs - s.incidentStartMs;
  const restarts = s.incidentRestarts;
  s.healthy = true;
  s.escalated = false;
  s.incidentStartMs = null;
  s.incidentRestarts = 0;
  const reason =
    `recovered after ${plural(s.consecutiveSuccesses, 'successful probe')} in a row; ` +
    `incident lasted ${secs(duration)} with ${plural(restarts, 'restart')}`;
  return {
    state: s,
    decision: {
      action: 'recovered' as const,
      reason,
      incidentOpened: false,
      incidentDurationMs: duration,
      incidentRestarts: restarts,
    },
  };
}

function onFailure(s: PolicyState, nowMs: number, config: PolicyConfig, mode: PolicyMode) {
  s.consecutiveSuccesses = 0;
  s.consecutiveFailures += 1;
  if (s.firstFailureMs === null) s.firstFailureMs = nowMs;
  const failures = plural(s.consecutiveFailures, 'failed probe');
  let incidentOpened = false;
  const none = (reason: string) => ({ state: s, decision: { action: 'none' as const, reason, incidentOpened } });

  if (s.healthy) {
    if (s.consecutiveFailures < config.failuresBeforeAction) {
      return none(`${failures} in a row, below the threshold of ${config.failuresBeforeAction}`);
    }
    s.healthy = false;
    s.incidentStartMs = s.firstFailureMs;
    s.incidentRestarts = 0;
    incidentOpened = true;
  }
  if (s.consecutiveFailures < config.failuresBeforeAction) {
    return none(
      `${failures} since the last restart, waiting for ${config.failuresBeforeAction} before acting again`,
    );
  }
  if (mode === 'standby') return none(`${failures} in a row; this node is standby, so monitoring only`);
  if (mode === 'paused') return none(`${failures} in a row; maintenance mode, automation paused`);
  if (s.escalated) return none(`${failures} in a row; already escalated, waiting for the handover`);

  const inWindow = s.restartTimesMs.length;
  if (inWindow >= config.maxRestarts) {
    s.escalated = true;
    const reason =
      `${failures} in a row after ${plural(inWindow, 'restart')} within ${secs(config.windowMs)}; ` +
      'restarts exhausted, escalating to a handover';
    return { state: s, decision: { action: 'escalate' as const, reason, incidentOpened } };
  }
  const wait = backoffDelayMs(inWindow, config.backoff);
  if (s.lastRestartMs !== null && nowMs - s.lastRestartMs < wait) {
    return none(`${failures} in a row; back-off, next restart allowed in ${secs(wait - (nowMs - s.lastRestartMs))}`);
  }
  s.restartTimesMs = [...s.restartTimesMs, nowMs];
  s.lastRestartMs = nowMs;
  s.consecutiveFailures = 0;
  s.incidentRestarts += 1;
  const reason = `${failures} in a row; restart ${inWindow + 1} of ${config.maxRestarts} within the window`;
  return { state: s, decision: { action: 'restart' as const, reason, incidentOpened } };
}
