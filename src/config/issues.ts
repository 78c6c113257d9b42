/**
 * Phrases zod issues as `key: problem (expected …)`, one line per key, with the value that was given
 * where that helps (a URL whose port is out of range, an address that is no CIDR, a duplicate entry).
 */
import type { z } from 'zod';
import type { ConfigProblem } from './load.js';

/** The value at `path` in the (interpolated) config, or undefined. */
export function valueAt(input: unknown, path: readonly (string | number)[]): unknown {
  let v: unknown = input;
  for (const k of path) {
    if (v === null || typeof v !== 'object') return undefined;
    v = (v as Record<string | number, unknown>)[k];
  }
  return v;
}

const show = (v: unknown): string => (typeof v === 'string' ? JSON.stringify(v) : String(v));
/** Keys whose values are never echoed (a config error must not print a secret). */
const SECRET_KEY = /secret|password|token|accesskey|privatekey/i;
const entries = (n: number): string => (n === 1 ? '1 entry' : `${n} entries`);

/** Zod's own messages ("Number must be less than or equal to 65535") say no more than the expected form. */
const ZOD_DEFAULT = /^(Number|String|Array|BigInt|Date|Value) must /;

/** Why a string is not a URL: a port out of range (the WHATWG parser says only "Invalid url"), or not a URL at all. */
export function urlProblem(value: unknown): string {
  const example = 'a URL such as http://10.0.1.2:8700';
  if (typeof value !== 'string') return `is not a URL (expected ${example})`;
  const m = /^[a-z][a-z0-9+.-]*:\/\/(?:[^@/?#]*@)?(\[[^\]]*\]|[^/:?#]*):(\d+)(?:[/?#]|$)/i.exec(value);
  if (m && Number(m[2]) > 65535) return `port ${m[2]} is out of range (expected ${example}, with a port from 1 to 65535)`;
  if (m && m[1] === '') return `${show(value)} has no host (expected ${example})`;
  return `${show(value)} is not a valid URL (expected ${example})`;
}

/** The first entry of `list` that repeats an earlier one (by its `node` or `name`, else whole), or null. */
export function firstDuplicate(list: unknown): { index: number; of: number; label: string } | null {
  if (!Array.isArray(list)) return null;
  const seen = new Map<string, number>();
  for (let i = 0; i < list.length; i++) {
    const e = list[i] as Record<string, unknown> | null;
    const id = e && typeof e === 'object' ? (typeof e.node === 'string' ? `node "${e.node}"` : typeof e.name === 'string' ? `name "${e.name}"` : JSON.stringify(e)) : JSON.stringify(e);
    const prev = seen.get(id);
    if (prev !== undefined) return { index: i, of: prev, label: id };
    seen.set(id, i);
  }
  return null;
}

/** Singular of a list key, for messages ("peers" -> "peer"). */
const singular = (key: string | number | undefined): string => (typeof key === 'string' ? key.replace(/s$/, '') : 'entry');

/**
 * Turn zod issues into `key: problem (expected …)` lines. `input` is the config as validated (after
 * environment interpolation), used to name the value given.
 */
export function describeIssues(error: z.ZodError, input?: unknown): ConfigProblem[] {
  const out: ConfigProblem[] = [];
  const push = (key: string, problem: string) => {
    // One line per key: a second issue on the same key (e.g. two refinements) adds nothing a reader needs first.
    if (!out.some((p) => p.key === key)) out.push({ key, problem });
  };
  for (const issue of error.issues) {
    const key = issue.path.join('.') || '(root)';
    const value = issue.path.some((k) => typeof k === 'string' && SECRET_KEY.test(k)) ? undefined : valueAt(input, issue.path);
    switch (issue.code) {
      case 'invalid_type':
        push(key, issue.received === 'undefined' ? `is required (expected ${issue.expected})` : `has the wrong type ${issue.received} (expected ${issue.expected})`);
        break;
      case 'unrecognized_keys':
        for (const k of issue.keys) push([...issue.path, k].join('.'), 'is not a known setting (expected one of the documented keys; see `nimbus-ha config example`)');
        break;
      case 'invalid_union_discriminator':
        push(key, `is not a known kind (expected one of ${issue.options.map((o) => JSON.stringify(o)).join(', ')})`);
        break;
      case 'invalid_enum_value':
        push(key, `is ${JSON.stringify(issue.received)} (expected one of ${issue.options.map((o) => JSON.stringify(o)).join(', ')})`);
        break;
      case 'too_small': {
        const expected = issue.type === 'string' ? `at least ${issue.minimum} characters` : issue.type === 'array' ? `at least ${entries(Number(issue.minimum))}` : `a value >= ${issue.minimum}`;
        push(key, `${ZOD_DEFAULT.test(issue.message) ? (issue.type === 'number' ? `is ${show(value)}` : 'is too short') : issue.message} (expected ${expected})`);
        break;
      }
      case 'too_big': {
        if (issue.type === 'array') {
          const dup = firstDuplicate(value);
          if (dup) {
            push(`${key}.${dup.index}`, `duplicate ${singular(issue.path.at(-1))}: ${dup.label} is also entry ${dup.of} (expected each ${singular(issue.path.at(-1))} once)`);
            break;
          }
        }
        const expected = issue.type === 'array' ? `at most ${entries(Number(issue.maximum))}` : issue.type === 'string' ? `at most ${issue.maximum} characters` : `a value <= ${issue.maximum}`;
        push(key, `${ZOD_DEFAULT.test(issue.message) ? (issue.type === 'number' ? `is ${show(value)}` : 'is too long') : issue.message} (expected ${expected})`);
        break;
      }
      case 'invalid_string':
        if (issue.validation === 'url') push(key, urlProblem(value));
        else push(key, `${value === undefined ? 'is not valid' : `is ${show(value)}`} (expected ${issue.message})`);
        break;
      default: {
        // Custom refinements say "must be X": say what was given and expect X.
        const m = /^must be ([^()]*)$/.exec(issue.message);
        if (m) push(key, `${value === undefined ? 'is not valid' : `is ${show(value)}`} (expected ${m[1]})`);
        else push(key, issue.message);
      }
    }
  }
  return out;
}
