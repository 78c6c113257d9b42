/**
 * `/peer/db/*` routes of a sidecar: the standby receives archived WAL files from the primary
 * (PUT /archive/:name?sha256=…, checked against the WAL file-name pattern and the checksum, written to a
 * temp file and renamed, never outside the archive directory), lists what it has (POST /archive/list),
 * and the primary serves a base backup for cloning (GET /basebackup?slot=…). Mount behind
 * `express.json({verify: captureRawBody})` and `requirePeerAuth(secret, {allowStream: true})`.
 */
import { createHash, randomBytes } from 'node:crypto';
import { chown, mkdir, open, readdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Router, type NextFunction, type Request, type Response } from 'express';
import { errorMessage, HaError } from '../../errors.js';
import { HEADER, STREAM_BODY } from '../../peer/auth.js';
import { compareArchiveNames, isArchiveFileName } from './wal-names.js';

export interface DbPeerRouterDeps {
  /** Directory the local standby restores WAL from. */
  archiveDir: string;
  /** Base backup of the local primary; `slot` is created first so the WAL of the backup is kept. */
  baseBackup?: (opts: { slot?: string }) => Promise<Readable>;
  /** Owner of received files (the server's OS user when the sidecar runs as root). */
  owner?: { uid: number; gid: number };
  /** Largest file accepted (WAL segments are at most 1 GiB). */
  maxFileBytes?: number;
  /** Called with every received file and every backup served (events, metrics). */
  onEvent?: (e: { kind: 'archive-received' | 'basebackup-served' | 'basebackup-failed'; name?: string; bytes?: number; peer?: string; error?: string }) => void;
}

function fail(res: Response, status: number, code: string, message: string): void {
  if (!res.headersSent) res.status(status).json({ error: code, message });
  else res.destroy();
}

export function dbPeerRouter(deps: DbPeerRouterDeps): Router {
  const r = Router();
  const max = deps.maxFileBytes ?? 1024 ** 3;

  // The auth middleware may allow streamed (unhashed) bodies on this mount; only the archive PUT,
  // which checks its own checksum, accepts them.
  r.use((req: Request, res: Response, next: NextFunction) => {
    const streamed = req.headers[HEADER.bodyHash] === STREAM_BODY;
    if (streamed && !(req.method === 'PUT' && req.path.startsWith('/archive/'))) {
      fail(res, 401, 'PEER_AUTH_FAILED', 'streamed bodies are accepted only by PUT /archive/:name');
      return;
    }
    next();
  });

  r.post('/archive/list', (_req, res) => {
    readdir(deps.archiveDir)
      .catch((err: NodeJS.ErrnoException) => (err.code === 'ENOENT' ? [] : Promise.reject(err)))
      .then((names) => res.json({ names: names.filter(isArchiveFileName).sort(compareArchiveNames) }))
      .catch((err) => fail(res, 500, 'DB_FAILED', `cannot list the WAL archive: ${errorMessage(err)}`));
  });

  r.put('/archive/:name', (req, res) => {
    const name = req.params.name;
    const sha = typeof req.query.sha256 === 'string' ? req.query.sha256 : '';
    if (!isArchiveFileName(name)) return fail(res, 400, 'DB_FAILED', `not a WAL archive file name: ${JSON.stringify(name)}`);
    if (!/^[0-9a-f]{64}$/.test(sha)) return fail(res, 400, 'DB_FAILED', 'sha256 query parameter (64 hex digits) required');
    const len = Number(req.headers['content-length'] ?? NaN);
    if (!Number.isFinite(len) || len < 0 || len > max) return fail(res, 400, 'DB_FAILED', `content-length required and at most ${max} bytes`);
    receive(deps, name, sha, req)
      .then((bytes) => {
        deps.onEvent?.({ kind: 'archive-received', name, bytes, peer: (req as Request & { peerNode?: string }).peerNode });
        res.json({ name, bytes });
      })
      .catch((err) => (err instanceof HaError ? fail(res, 400, err.code, err.message) : fail(res, 500, 'DB_FAILED', `cannot store ${name}: ${errorMessage(err)}`)));
  });

  r.get('/basebackup', (req, res) => {
    const slot = typeof req.query.slot === 'string' ? req.query.slot : undefined;
    if (!deps.baseBackup) return fail(res, 409, 'CLONE_FAILED', 'this node serves no base backup (it is not the primary)');
    if (slot !== undefined && !/^[a-z0-9_]{1,63}$/.test(slot)) return fail(res, 400, 'CLONE_FAILED', 'slot: lower-case letters, digits, underscore, at most 63');
    const backup = deps.baseBackup;
    // A provider that throws at once (not a ready primary yet) answers like one that rejects.
    Promise.resolve()
      .then(() => backup({ slot }))
      .then(async (stream) => {
        res.status(200).type('application/octet-stream');
        await pipeline(stream, res);
        deps.onEvent?.({ kind: 'basebackup-served', peer: (req as Request & { peerNode?: string }).peerNode });
      })
      .catch((err) => {
        deps.onEvent?.({ kind: 'basebackup-failed', error: errorMessage(err) });
        // 503 when the primary is only not ready yet (promotion under way): the standby retries.
        const notReady = err instanceof HaError && err.details?.notReady === true;
        fail(res, notReady ? 503 : 500, err instanceof HaError ? err.code : 'CLONE_FAILED', `base backup failed: ${errorMessage(err)}`);
      });
  });
  return r;
}

async function receive(deps: DbPeerRouterDeps, name: string, sha: string, body: Readable): Promise<number> {
  await mkdir(deps.archiveDir, { recursive: true });
  const tmp = join(deps.archiveDir, `.${name}.${randomBytes(6).toString('hex')}.tmp`);
  const hash = createHash('sha256');
  let bytes = 0;
  const fh = await open(tmp, 'wx', 0o640);
  try {
    for await (const chunk of body) {
      const b = chunk as Buffer;
      hash.update(b);
      bytes += b.length;
      await fh.write(b);
    }
    await fh.sync();
  } catch (err) {
    await fh.close();
    await rm(tmp, { force: true });
    throw err;
  }
  await fh.close();
  const got = hash.digest('hex');
  if (got !== sha) {
    await rm(tmp, { force: true });
    throw new HaError('DB_FAILED', `checksum mismatch for ${name} (got ${got.slice(0, 12)}…, expected ${sha.slice(0, 12)}…): resend`);
  }
  if (deps.owner) await chown(tmp, deps.owner.uid, deps.owner.gid);
  await rename(tmp, join(deps.archiveDir, name));
  return bytes;
}
