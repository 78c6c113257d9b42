/**
 * `nimbus-ha repo sync --from URL --to URL`: one sync pass between two image repositories, e.g. to seed a
 * new standby or to fail back by hand. URL: s3://ACCESS:SECRET@HOST:PORT/BUCKET[?signature=v2&multipart=false]
 * (s3+https:// for TLS endpoints).
 */
import { InvalidArgumentError, type Command } from 'commander';
import { S3Store, type S3StoreOptions } from '../../adapters/cumulus/s3-store.js';
import { HaError } from '../errors.js';
import { syncRepo, type SyncProgress, type SyncResult } from '../replication/repo/engine.js';
import { originalKey, planQuarantine, QUARANTINE_PREFIX, type QuarantinedObject } from '../replication/repo/quarantine.js';
import { copyObject } from '../replication/repo/copy.js';
import type { ObjectInfo } from '../ports.js';

/** Parse a repository URL into store options. Percent-encoded credentials are decoded. */
export function parseRepoUrl(text: string): S3StoreOptions {
  let u: URL;
  try {
    u = new URL(text);
  } catch {
    throw new HaError('USAGE', `not a repository URL: ${text} (expected s3://ACCESS:SECRET@HOST:PORT/BUCKET)`);
  }
  const scheme = u.protocol.replace(/:$/, '');
  if (scheme !== 's3' && scheme !== 's3+http' && scheme !== 's3+https') {
    throw new HaError('USAGE', `unsupported scheme ${scheme}: in ${text} (use s3:// or s3+https://)`);
  }
  const bucket = decodeURIComponent(u.pathname.replace(/^\/+|\/+$/g, ''));
  if (!bucket || bucket.includes('/')) throw new HaError('USAGE', `repository URL ${text} must name exactly one bucket, e.g. s3://key:secret@127.0.0.1:8888/Repo`);
  if (!u.hostname) throw new HaError('USAGE', `repository URL ${text} has no host`);
  const q = u.searchParams;
  const sig = q.get('signature') ?? 'v4';
  if (sig !== 'v2' && sig !== 'v4') throw new HaError('USAGE', `signature must be v2 or v4 in ${text}`);
  const opts: S3StoreOptions = {
    endpoint: `${scheme === 's3+https' ? 'https' : 'http'}://${u.host}`,
    bucket,
    region: q.get('region') ?? 'us-east-1',
    forcePathStyle: q.get('pathStyle') !== 'false',
    signatureVersion: sig,
    multipart: q.get('multipart') !== 'false',
  };
  if (u.username) opts.accessKeyId = decodeURIComponent(u.username);
  if (u.password) opts.secretAccessKey = decodeURIComponent(u.password);
  const part = q.get('partSize');
  if (part) opts.partSize = Number(part);
  return opts;
}

/** The URL with its secret masked, for messages. */
export function maskRepoUrl(text: string): string {
  return text.replace(/(\/\/[^:/@]+:)[^@]*@/, '$1***@');
}

const fraction = (v: string) => {
  const n = Number(v);
  if (!(n >= 0 && n <= 1)) throw new InvalidArgumentError('must be a number between 0 and 1');
  return n;
};
const positiveInt = (v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('must be a positive integer');
  return n;
};

function mib(bytes: number): string {
  return (bytes / 1024 / 1024).toFixed(1);
}

function progressLine(p: SyncProgress): string {
  const total = Math.max(1, p.bytesTotal);
  const share = p.bytesTotal ? Math.min(1, p.bytesDone / total) : p.objectsTotal ? p.objectsDone / p.objectsTotal : 0;
  const width = 24;
  const fill = Math.round(share * width);
  return `\r${p.phase.padEnd(6)} [${'#'.repeat(fill)}${'-'.repeat(width - fill)}] ${String(Math.round(share * 100)).padStart(3)}%  ${p.objectsDone}/${p.objectsTotal} objects  ${mib(p.bytesDone)}/${mib(p.bytesTotal)} MiB  ${mib(p.bytesPerSec)} MiB/s `;
}

export function formatSyncSummary(r: SyncResult): string {
  const lines = [
    `${r.dryRun ? 'dry run: would copy' : 'copied'} ${r.dryRun ? r.planned.copy : r.copied} object(s) (${mib(r.dryRun ? r.planned.bytes : r.bytes)} MiB), ` +
      `${r.dryRun ? 'would delete' : 'deleted'} ${r.dryRun ? r.planned.delete : r.deleted}, unchanged ${r.skipped}, failed ${r.failed}` +
      (r.corrupt ? `, repaired ${r.corrupt} corrupt` : '') +
      (r.quarantined ? `, quarantined ${r.quarantined} under ${r.quarantinePrefix}` : '') +
      ` in ${(r.durationMs / 1000).toFixed(1)} s` + (r.aborted ? ' (interrupted: run again to resume)' : ''),
  ];
  for (const e of r.errors.slice(0, 20)) lines.push(`  ${e.key || '(pass)'}: ${e.message}`);
  if (r.errors.length > 20) lines.push(`  … and ${r.errors.length - 20} more`);
  return lines.join('\n') + '\n';
}

interface SyncCliOptions {
  from: string;
  to: string;
  dryRun?: boolean;
  json?: boolean;
  deep?: boolean;
  concurrency: number;
  maxDeleteFraction: number;
  allowEmptySource?: boolean;
  conflict: 'source-wins' | 'quarantine';
}

export function registerRepoCommands(program: Command): void {
  const repo = program.command('repo').description('image repository (Cumulus) replication');
  repo
    .command('quarantine')
    .description('objects repository sync moved aside (nha-quarantine/): list them, merge back those whose key the bucket lacks, or drop expired ones')
    .argument('<action>', 'list | merge | drop')
    .requiredOption('--repo <url>', 'the repository, s3://ACCESS:SECRET@HOST:PORT/BUCKET[?signature=v2]')
    .option('--to <url>', "merge: copy into this repository instead (the primary's, when --repo is a standby's); the quarantined copies stay until --repo holds the same content")
    .option('--keep-days <n>', 'drop: quarantined objects older than this many days', positiveInt, 30)
    .option('--json', 'one JSON object')
    .action(async (action: string, opts: { repo: string; to?: string; keepDays: number; json?: boolean }) => {
      if (!['list', 'merge', 'drop'].includes(action)) throw new HaError('USAGE', `unknown action ${action} (list, merge or drop)`);
      if (opts.to && action !== 'merge') throw new HaError('USAGE', '--to goes with merge only');
      const store = new S3Store(parseRepoUrl(opts.repo));
      const target = opts.to ? new S3Store(parseRepoUrl(opts.to)) : null;
      try {
        const quarantined: QuarantinedObject[] = [];
        const infos = new Map<string, ObjectInfo>();
        const bucket = new Map<string, string>();
        for await (const o of store.list()) {
          // Keys without an original key (the rejoin marker, nha-quarantine/primary-since) are no objects to merge.
          if (o.key.startsWith(QUARANTINE_PREFIX)) {
            if (originalKey(o.key) === null) continue;
            quarantined.push({ key: o.key, etag: o.etag, mtimeMs: o.mtimeMs });
            infos.set(o.key, o);
          } else if (!target) bucket.set(o.key, o.etag);
        }
        if (target) for await (const o of target.list()) if (!o.key.startsWith(QUARANTINE_PREFIX)) bucket.set(o.key, o.etag);
        const plan = planQuarantine(quarantined, bucket, { keepDays: opts.keepDays, nowMs: Date.now() });
        const done: string[] = [];
        if (action === 'merge' && target) {
          // Into another repository: streamed and verified; the quarantined copy stays (its own repository
          // lacks the key until it pulls it), drop it later with a plain merge once both hold it.
          for (const m of plan.merge) {
            await copyObject(store, target, infos.get(m.from)!, () => undefined, undefined, 'response', m.to);
            done.push(m.to);
          }
        } else if (action === 'merge') {
          for (const m of plan.merge) {
            await store.copy(m.from, m.to);
            await store.delete(m.from);
            done.push(m.to);
          }
          for (const m of plan.same) await store.delete(m.from);
        } else if (action === 'drop') {
          for (const k of plan.expired) {
            await store.delete(k);
            done.push(k);
          }
        }
        const out = { action, quarantined: quarantined.length, mergeable: plan.merge.map((m) => m.to), same: plan.same.map((m) => m.to), conflicts: plan.conflicts, expired: plan.expired, done };
        if (opts.json) console.log(JSON.stringify(out));
        else {
          console.log(`${quarantined.length} quarantined objects in ${maskRepoUrl(opts.repo)}`);
          for (const m of plan.merge) console.log(`  ${action === 'merge' ? 'merged back' : 'mergeable  '}  ${m.to}  (${m.from})`);
          for (const m of plan.same) console.log(`  ${action === 'merge' ? 'dropped (same)' : 'same content'}  ${m.to}`);
          for (const m of plan.conflicts) console.log(`  conflict (other content in the bucket, kept)  ${m.to}  (${m.from})`);
          if (action === 'drop') console.log(`  dropped ${done.length} objects older than ${opts.keepDays} days`);
        }
      } finally {
        store.close();
        target?.close();
      }
    });
  repo
    .command('sync')
    .description('one sync pass: make --to hold what --from holds (copy new/changed, delete removed, verify)')
    .requiredOption('--from <url>', 'source repository, s3://ACCESS:SECRET@HOST:PORT/BUCKET[?signature=v2&multipart=false]')
    .requiredOption('--to <url>', 'target repository, same form')
    .option('--dry-run', 'list and compare only; change nothing')
    .option('--deep', 'also read unchanged-looking objects and repair those whose content differs')
    .option('--concurrency <n>', 'objects copied in parallel', positiveInt, 8)
    .option('--max-delete-fraction <f>', 'refuse a pass that would delete more than this share of the target', fraction, 0.1)
    .option('--allow-empty-source', 'let an empty source empty the target')
    .option('--conflict <policy>', 'source-wins, or quarantine (keep overwritten/deleted target objects under nha-quarantine/)', 'source-wins')
    .option('--json', 'print the result as JSON')
    .action(async (opts: SyncCliOptions) => {
      if (opts.conflict !== 'source-wins' && opts.conflict !== 'quarantine') {
        throw new HaError('USAGE', `--conflict must be source-wins or quarantine, not ${opts.conflict}`);
      }
      const source = new S3Store(parseRepoUrl(opts.from));
      const target = new S3Store(parseRepoUrl(opts.to));
      const tty = process.stderr.isTTY && !opts.json;
      const stop = new AbortController();
      const onSigint = () => stop.abort();
      process.once('SIGINT', onSigint);
      try {
        const result = await syncRepo(source, target, {
          dryRun: opts.dryRun,
          deep: opts.deep,
          concurrency: opts.concurrency,
          maxDeleteFraction: opts.maxDeleteFraction,
          allowEmptySource: opts.allowEmptySource,
          conflictPolicy: opts.conflict,
          signal: stop.signal,
          onProgress: tty ? (p) => process.stderr.write(progressLine(p)) : undefined,
        });
        if (tty) process.stderr.write('\n');
        process.stdout.write(opts.json ? JSON.stringify(result, null, 2) + '\n' : formatSyncSummary(result));
        if (result.failed > 0 || result.aborted) process.exitCode = 1;
      } finally {
        process.off('SIGINT', onSigint);
        source.close();
        target.close();
      }
    });
}
