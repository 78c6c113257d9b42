import { readFileSync } from 'node:fs';
import { parse as parseYaml, YAMLParseError } from 'yaml';
import { z } from 'zod';
import { HaError } from '../errors.js';
import { readSecretFile } from './secrets.js';
import { describeIssues } from './issues.js';

export { describeIssues };

/** One problem found in a config file, already phrased as `key: problem (expected …)`. */
export interface ConfigProblem {
  key: string;
  problem: string;
}

/** Environment variables that override secrets without putting them in files. */
export const ENV_OVERRIDES: Record<string, string[]> = {
  NHA_SECRET: ['secret'],
  NHA_DATA_SECRET: ['dataSecret'],
  NHA_ADMIN_TOKEN: ['adminToken'],
  NHA_DB_SUPERUSER_PASSWORD: ['db', 'superuserPassword'],
  NHA_DB_REPL_PASSWORD: ['db', 'replicationPassword'],
  NHA_REPO_ACCESS_KEY_ID: ['repo', 'local', 'accessKeyId'],
  NHA_REPO_SECRET_ACCESS_KEY: ['repo', 'local', 'secretAccessKey'],
  NHA_WEBHOOK_SECRET: ['notify', 'webhook', 'secret'],
  NHA_ETCD_PASSWORD: ['coordinator', 'auth', 'password'],
};

/** Replace `${VAR}` and `${VAR:-default}` in string values; unknown variables are reported. */
export function interpolateEnv(value: unknown, env: NodeJS.ProcessEnv, path: string[], problems: ConfigProblem[]): unknown {
  if (typeof value === 'string') {
    return value.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g, (_m, name: string, def?: string) => {
      const v = env[name];
      if (v !== undefined && v !== '') return v;
      if (def !== undefined) return def;
      problems.push({ key: path.join('.') || '(root)', problem: `environment variable ${name} is not set (expected it to be exported, or write \${${name}:-default})` });
      return '';
    });
  }
  if (Array.isArray(value)) return value.map((v, i) => interpolateEnv(v, env, [...path, String(i)], problems));
  if (value && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = interpolateEnv(v, env, [...path, k], problems);
    return out;
  }
  return value;
}

/** Secrets that may come from a file instead: value key, file key, environment variable. */
const SECRET_KEYS: [string, string, string][] = [
  ['secret', 'secretFile', 'NHA_SECRET'],
  ['adminToken', 'adminTokenFile', 'NHA_ADMIN_TOKEN'],
  ['dataSecret', 'dataSecretFile', 'NHA_DATA_SECRET'],
];
/** Secrets that may be left unset (when they are required is a cross-field rule: src/config/checks.ts). */
const OPTIONAL_SECRETS = new Set(['dataSecret']);

/** `secretFile` / `adminTokenFile` / `dataSecretFile`: read when the value is not given inline or by its variable. */
function resolveSecretFiles(raw: Record<string, unknown>, problems: ConfigProblem[], given: Set<string>): void {
  for (const [key, fileKey] of SECRET_KEYS) {
    const file = raw[fileKey];
    if (file === undefined) continue;
    // A list of files while the key is rotated: one key per file, the first signing.
    const files = typeof file === 'string' ? [file] : Array.isArray(file) && file.every((f) => typeof f === 'string') ? (file as string[]) : null;
    if (!files || files.some((f) => !f)) continue; // the schema reports the type
    if (given.has(key)) {
      problems.push({ key: fileKey, problem: `is set together with ${key} (expected one of them)` });
      continue;
    }
    if (raw[key] !== undefined) continue; // the environment variable overrides the file
    const values: string[] = [];
    files.forEach((f, i) => {
      const r = readSecretFile(f);
      if ('problem' in r) problems.push({ key: typeof file === 'string' ? fileKey : `${fileKey}.${i}`, problem: r.problem });
      else values.push(r.value);
    });
    if (values.length === files.length) raw[key] = typeof file === 'string' ? values[0] : values;
  }
}

function applyOverrides(raw: Record<string, unknown>, env: NodeJS.ProcessEnv): void {
  for (const [name, path] of Object.entries(ENV_OVERRIDES)) {
    const v = env[name];
    if (v === undefined || v === '') continue;
    let obj: Record<string, unknown> = raw;
    for (const key of path.slice(0, -1)) {
      if (!obj[key] || typeof obj[key] !== 'object') {
        // Only override inside sections the file already has: a secret alone does not enable a feature.
        obj = {};
        break;
      }
      obj = obj[key] as Record<string, unknown>;
    }
    obj[path[path.length - 1]] = v;
  }
}

/** Cross-field rules that a schema cannot express per field. */
export type CrossCheck<T> = (cfg: T) => ConfigProblem[];

export interface ParseResult<T> {
  config?: T;
  problems: ConfigProblem[];
}

/** Parse and validate config text; every problem is reported at once. The result is deep-frozen. */
export function parseConfigText<S extends z.ZodTypeAny>(
  text: string,
  schema: S,
  opts: { env?: NodeJS.ProcessEnv; crossChecks?: CrossCheck<z.output<S>>[] } = {},
): ParseResult<z.output<S>> {
  const env = opts.env ?? process.env;
  let raw: unknown;
  try {
    raw = parseYaml(text, { prettyErrors: true });
  } catch (err) {
    const msg = err instanceof YAMLParseError ? err.message.split('\n')[0] : String(err);
    return { problems: [{ key: '(file)', problem: `is not valid YAML: ${msg}` }] };
  }
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) {
    return { problems: [{ key: '(root)', problem: 'is empty or not a mapping (expected key: value settings)' }] };
  }
  const problems: ConfigProblem[] = [];
  const interpolated = interpolateEnv(raw, env, [], problems) as Record<string, unknown>;
  const given = new Set(SECRET_KEYS.map(([k]) => k).filter((k) => interpolated[k] !== undefined));
  applyOverrides(interpolated, env);
  resolveSecretFiles(interpolated, problems, given);
  for (const [key, fileKey, variable] of SECRET_KEYS) {
    const p = problems.find((x) => x.key === key && x.problem.startsWith('environment variable'));
    if (p) p.problem = `${p.problem.replace(/ \(expected.*$/, '')} (expected a random value of at least 24 characters: export ${variable}=$(openssl rand -base64 32), or ${fileKey}: FILE with mode 0600)`;
    if (interpolated[key] === undefined && interpolated[fileKey] === undefined && !OPTIONAL_SECRETS.has(key) && isObjectSchemaWith(schema, key)) {
      problems.push({ key, problem: `is not set (expected \${${variable}} with ${variable} exported, or ${fileKey}: FILE with mode 0600)` });
    }
  }
  const parsed = schema.safeParse(interpolated);
  if (!parsed.success) {
    // One problem per key: an unset variable or unreadable file already says what is wrong with it.
    const seen = new Set(problems.map((p) => p.key));
    for (const [key, fileKey] of SECRET_KEYS) if (seen.has(fileKey)) seen.add(key);
    return { problems: [...problems, ...describeIssues(parsed.error, interpolated).filter((p) => !seen.has(p.key))] };
  }
  for (const check of opts.crossChecks ?? []) problems.push(...check(parsed.data));
  if (problems.length) {
    // An unreadable secret file already says what is wrong with its key (an optional one may be unset).
    const fileProblems = new Set(problems.map((p) => p.key));
    const shadowed = new Set(SECRET_KEYS.filter(([, fileKey]) => fileProblems.has(fileKey)).map(([key]) => key));
    return { problems: problems.filter((p) => !shadowed.has(p.key)) };
  }
  return { config: deepFreeze(parsed.data), problems: [] };
}

function isObjectSchemaWith(schema: z.ZodTypeAny, key: string): boolean {
  return schema instanceof z.ZodObject && key in (schema.shape as Record<string, unknown>);
}

export function loadConfigFile<S extends z.ZodTypeAny>(
  file: string,
  schema: S,
  opts: { env?: NodeJS.ProcessEnv; crossChecks?: CrossCheck<z.output<S>>[] } = {},
): z.output<S> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new HaError('CONFIG_NOT_FOUND', `cannot read config file ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  const r = parseConfigText(text, schema, opts);
  if (!r.config) {
    throw new HaError('CONFIG_INVALID', `invalid config ${file}:\n` + formatProblems(r.problems), { problems: r.problems });
  }
  return r.config;
}

export function formatProblems(problems: ConfigProblem[]): string {
  return problems.map((p) => `  ${p.key}: ${p.problem}`).join('\n');
}

export function deepFreeze<T>(o: T): T {
  if (o && typeof o === 'object' && !Object.isFrozen(o)) {
    Object.freeze(o);
    for (const v of Object.values(o as Record<string, unknown>)) deepFreeze(v);
  }
  return o;
}
