/**
 * `/peer/files/*` routes on the standby's sidecar. Mount behind `express.json({verify: captureRawBody})`
 * and `requirePeerAuth(secret, {allowStream: true})`: the PUT route carries a streamed body whose
 * checksum travels in the signed query; every other route here refuses streamed (unhashed) bodies.
 */
import { Router, type NextFunction, type Request, type Response } from 'express';
import { ZodError, type ZodSchema } from 'zod';
import { errorMessage, HaError } from '../../errors.js';
import { HEADER, STREAM_BODY, type PeerRequest } from '../../peer/auth.js';
import { batchSchema, fileQuerySchema, manifestRequestSchema, mergeRequestSchema, type ManifestResponse } from './protocol.js';
import type { FileSyncReceiver } from './receiver.js';

export interface FilesPeerRouterDeps {
  receiver: FileSyncReceiver;
}

function parse<T>(schema: ZodSchema<T>, value: unknown): T {
  try {
    return schema.parse(value);
  } catch (err) {
    if (err instanceof ZodError) {
      throw new HaError('FILES_FAILED', `malformed request: ${err.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`, { status: 400 });
    }
    throw err;
  }
}

function sendError(res: Response, err: unknown): void {
  if (err instanceof HaError) {
    const status =
      err.code === 'FILES_PATH_OUTSIDE_TREE' ? 400 : typeof err.details?.status === 'number' ? err.details.status : err.code === 'FILES_FAILED' ? 400 : 500;
    res.status(status).json({ error: err.code, message: err.message });
    return;
  }
  res.status(500).json({ error: 'FILES_FAILED', message: `file sync failed on the receiver: ${errorMessage(err)}` });
}

const route =
  (fn: (req: PeerRequest, res: Response) => Promise<void>) =>
  (req: Request, res: Response, _next: NextFunction): void => {
    fn(req as PeerRequest, res).catch((err) => sendError(res, err));
  };

export function filesPeerRouter(deps: FilesPeerRouterDeps): Router {
  const r = Router();
  const { receiver } = deps;

  // The auth middleware may allow streamed bodies for this mount; only PUT /file checks its own hash.
  r.use((req: Request, res: Response, next: NextFunction) => {
    const streamed = req.headers[HEADER.bodyHash] === STREAM_BODY;
    if (streamed && !(req.method === 'PUT' && req.path === '/file')) {
      res.status(401).json({ error: 'PEER_AUTH_FAILED', message: 'streamed bodies are accepted only by PUT /peer/files/file' });
      return;
    }
    next();
  });

  r.post(
    '/manifest',
    route(async (req, res) => {
      const { tree } = parse(manifestRequestSchema, req.body);
      const body: ManifestResponse = { tree, entries: await receiver.manifest(tree) };
      res.json(body);
    }),
  );

  r.post(
    '/batch',
    route(async (req, res) => {
      const batch = parse(batchSchema, req.body);
      res.json(await receiver.applyBatch(batch, req.peerNode));
    }),
  );

  // On the primary: a rejoining standby merges back the files it wrote while it was primary.
  r.post(
    '/merge',
    route(async (req, res) => {
      const m = parse(mergeRequestSchema, req.body);
      res.json(await receiver.acceptMerge(m, req.peerNode));
    }),
  );

  r.put(
    '/file',
    route(async (req, res) => {
      try {
        const q = parse(fileQuerySchema, req.query);
        res.json(await receiver.receiveFile(q, req, req.peerNode));
      } catch (err) {
        // Drain the rest of a refused upload so the sender reads our answer instead of a reset.
        req.resume();
        throw err;
      }
    }),
  );

  r.get('/status', (_req, res) => {
    res.json(receiver.status());
  });

  return r;
}
