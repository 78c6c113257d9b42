import express, { Router } from 'express';
import type { Clock } from '../../ports.js';
import type { EventInput } from '../../events/bus.js';
import { HaError } from '../../errors.js';
import type { DbConfig } from './config.js';
import type { ManagedDatabase } from './types.js';
import { dbPeerRouter } from './router.js';
import { readRecloneMarks } from './archive-retention-runner.js';
import { waitReplay } from './handover.js';

/**
 * The peer endpoints of the database data path (DbDataPath.router, mounted under /peer/db): the WAL
 * archive and base backups (router.ts), the standby's side of a handover (/wait-replay) and the
 * primary's re-clone marks (/reclone). The role state stays with DbDataPath: read through `primary`
 * and `ready`.
 */
export function dataPathRouter(o: {
  config: DbConfig;
  db: ManagedDatabase;
  clock: Clock;
  emit: (e: EventInput) => void;
  /** This node is the primary. */
  primary(): boolean;
  /** The server accepts writes and can serve base backups (set at the end of onPromote). */
  ready(): boolean;
}): Router {
  const inner = dbPeerRouter({
    archiveDir: o.config.archiveDir,
    baseBackup: (opts) => {
      if (!o.primary() || !o.ready()) throw new HaError('DB_FAILED', 'not a ready primary: no base backup here yet', { notReady: true });
      return o.db.baseBackup(opts);
    },
    onEvent: (e) => {
      if (e.kind !== 'archive-received') o.emit({ type: `db.${e.kind}`, severity: e.kind === 'basebackup-failed' ? 'warning' : 'info', message: `${e.kind}${e.peer ? ` for ${e.peer}` : ''}${e.error ? `: ${e.error}` : ''}`, details: { bytes: e.bytes } });
    },
  });
  const router = Router();
  router.post('/wait-replay', express.json(), async (req, res) => {
    const lsn = String(req.body?.lsn ?? '');
    const timeoutMs = Math.min(Number(req.body?.timeoutMs ?? 30_000), 120_000);
    res.json(await waitReplay(o, lsn, timeoutMs));
  });
  // Which standbys the hard cap of this primary's WAL archive marked for re-clone.
  router.post('/reclone', async (_req, res) => {
    res.json({ readers: o.primary() ? await readRecloneMarks(o.config.archiveDir) : [] });
  });
  router.use(inner);
  return router;
}
