/**
 * `/peer/nimbus-state/*` on the standby's sidecar (mount as a stream router: behind peer HMAC auth with
 * streamed bodies allowed; only PUT /file takes one, and it checks its own sha256 from the signed query).
 */
import { Router, type NextFunction, type Request, type Response } from 'express';
import { z, ZodError, type ZodSchema } from 'zod';
import { HEADER, STREAM_BODY } from '../../peer/auth.js';
import { NimbusStateError } from './types.js';
import type { NimbusStateReceiver } from './receiver.js';

const hex64 = z.string().regex(/^[0-9a-f]{64}$/);
const unitFile = z.object({
  path: z.string().min(1),
  size: z.number().int().min(0),
  digest: hex64,
  mode: z.enum(['same', 'delta', 'whole']),
  bases: z.array(hex64).max(64),
  /** whole: sha256 of the file shipped to incoming/. */
  sha256: hex64.optional(),
});
const manifestReq = z.object({ item: z.string().min(1), area: z.enum(['mirror', 'posixdata']) });
const fileQuery = z.object({
  item: z.string().min(1),
  area: z.enum(['mirror', 'posixdata', 'incoming', 'delta']),
  path: z.string().min(1),
  sha256: z.string().regex(/^[0-9a-f]{64}$/),
  size: z.coerce.number().int().min(0),
  mtimeMs: z.coerce.number().optional(),
});
const commitReq = z.discriminatedUnion('kind', [
  z.object({
    kind: z.literal('derby'),
    item: z.string().min(1),
    snapshotId: z.string().regex(/^[A-Za-z0-9._-]{1,200}$/),
    takenAt: z.number(),
    files: z.array(unitFile),
    /** The delta unit (records of the files in mode delta), shipped as PUT /file area delta, path <snapshotId>.delta. */
    delta: z.object({ sha256: hex64, size: z.number().int().min(0) }).nullable(),
    /** sha256 of the unit's manifest (files and delta) as the sender computed it. */
    manifestDigest: hex64,
  }),
  z.object({ kind: z.literal('sqlite'), item: z.string().min(1), snapshotId: z.string().min(1), takenAt: z.number(), sha256: z.string().regex(/^[0-9a-f]{64}$/), root: z.string().min(1) }),
]);
const deleteReq = z.object({ item: z.string().min(1), paths: z.array(z.string().min(1)) });

function parse<T>(schema: ZodSchema<T>, v: unknown): T {
  try {
    return schema.parse(v);
  } catch (err) {
    if (err instanceof ZodError) throw new NimbusStateError(`malformed request: ${err.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`, 400);
    throw err;
  }
}

function fail(res: Response, err: unknown): void {
  const status = err instanceof NimbusStateError ? err.status : 500;
  const reason = err instanceof NimbusStateError ? err.reason : undefined;
  if (!res.headersSent) res.status(status).json({ error: 'NIMBUS_STATE_FAILED', message: (err as Error).message, ...(reason ? { reason } : {}) });
}

const route = (fn: (req: Request, res: Response) => Promise<unknown>) => (req: Request, res: Response) => {
  fn(req, res)
    .then((body) => res.json(body))
    .catch((err) => fail(res, err));
};

export function nimbusStatePeerRouter(receiver: NimbusStateReceiver): Router {
  const r = Router();
  r.use((req: Request, res: Response, next: NextFunction) => {
    if (req.headers[HEADER.bodyHash] === STREAM_BODY && !(req.method === 'PUT' && req.path === '/file')) {
      res.status(401).json({ error: 'PEER_AUTH_FAILED', message: 'streamed bodies are accepted only by PUT /peer/nimbus-state/file' });
      return;
    }
    next();
  });
  r.post('/manifest', route(async (req) => {
    const q = parse(manifestReq, req.body);
    return receiver.manifest(q.item, q.area);
  }));
  r.put('/file', (req, res) => {
    Promise.resolve()
      .then(() => receiver.receiveFile(parse(fileQuery, req.query), req))
      .then((b) => res.json(b))
      .catch((err) => {
        req.resume();
        fail(res, err);
      });
  });
  r.post('/commit', route(async (req) => {
    const c = parse(commitReq, req.body);
    return c.kind === 'derby' ? receiver.commitDerby(c.item, c) : receiver.commitSqlite(c.item, c);
  }));
  r.post('/posixdata/delete', route(async (req) => {
    const d = parse(deleteReq, req.body);
    return receiver.deletePosix(d.item, d.paths);
  }));
  r.post('/status', route(async () => receiver.status()));
  return r;
}
