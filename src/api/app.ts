import { timingSafeEqual } from 'node:crypto';
import express, { type NextFunction, type Request, type Response, type Router } from 'express';
import type { Registry } from 'prom-client';
import type { Agent } from '../cluster/agent.js';
import { isHeartbeatMessage } from '../cluster/heartbeat.js';
import type { EventBus } from '../events/bus.js';
import { captureRawBody, requirePeerAuth } from '../peer/auth.js';

export interface ApiDeps {
  agent: Agent;
  bus: EventBus;
  metrics: Registry;
  secret: string;
  adminToken: string;
  /** Feature routers mounted under /peer/<name> behind HMAC authentication. */
  peerRouters?: Record<string, Router>;
  /** Feature routers that accept streamed (unsigned-body) requests, checked by content hash. */
  streamPeerRouters?: Record<string, Router>;
}

function tokenOk(header: string | undefined, token: string): boolean {
  if (!header?.startsWith('Bearer ')) return false;
  const given = Buffer.from(header.slice(7));
  const want = Buffer.from(token);
  return given.length === want.length && timingSafeEqual(given, want);
}

/**
 * The sidecar's HTTP API: health for load balancers, status, metrics, events, admin (bearer token) and
 * peer (HMAC) routes. Admin routes only queue requests; the agent's next cycle acts on them.
 */
export function createApp(d: ApiDeps): express.Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);

  // -- health: 200 or 503, JSON on GET, empty on HEAD (express handles HEAD via GET) --
  const health = (res: Response, ok: boolean, body: Record<string, unknown>) => {
    res.status(ok ? 200 : 503).set('cache-control', 'no-store').json({ ok, role: d.agent.role, epoch: d.agent.epoch, ...body });
  };
  app.get('/health', (_req, res) => {
    const healthy = d.agent.role !== 'starting' && d.agent.role !== 'fenced' && (d.agent.status().healthy as boolean);
    health(res, healthy, { healthy });
  });
  app.get('/primary', (_req, res) => {
    health(res, d.agent.role === 'primary', {});
  });
  app.get('/standby', (req, res) => {
    const max = req.query.max_lag_ms;
    let maxLag: number | null = null;
    if (max !== undefined) {
      maxLag = Number(max);
      if (!Number.isFinite(maxLag) || maxLag < 0) {
        res.status(400).json({ error: 'USAGE', message: 'max_lag_ms must be a non-negative number of milliseconds' });
        return;
      }
    }
    const lag = d.agent.lagMs();
    const st = d.agent.status();
    const isStandby = d.agent.role === 'standby';
    const healthy = st.healthy as boolean;
    const lagOk = maxLag === null || (lag !== null && lag <= maxLag);
    // A data path whose replication is failing (repository pass errors, clone failed...) makes this node
    // a poor target for reads and for a takeover.
    const failing = Object.entries((st.replication ?? {}) as Record<string, Record<string, unknown>>)
      .filter(([, r]) => (r.lastError ?? r.last_error) != null)
      .map(([name]) => name);
    health(res, isStandby && healthy && lagOk && failing.length === 0, { lag_ms: lag, max_lag_ms: maxLag, healthy, replication_failing: failing });
  });
  app.get('/status', (_req, res) => {
    res.set('cache-control', 'no-store').json(d.agent.status());
  });
  app.get('/metrics', async (_req, res) => {
    res.set('content-type', d.metrics.contentType).send(await d.metrics.metrics());
  });
  app.get('/events', (req, res) => {
    const limit = Math.min(Math.max(Number(req.query.limit ?? 100) || 100, 1), 1000);
    const types = typeof req.query.type === 'string' ? req.query.type.split(',') : undefined;
    res.json({ events: d.bus.recent({ limit, types }) });
  });

  // -- admin: bearer token; 401 changes nothing --
  const admin = express.Router();
  admin.use((req: Request, res: Response, next: NextFunction) => {
    if (!tokenOk(req.headers.authorization, d.adminToken)) {
      d.bus.emit({ type: 'admin_auth_failed', severity: 'warning', message: `rejected ${req.method} ${req.originalUrl} from ${req.ip}: missing or wrong bearer token` });
      res.status(401).set('www-authenticate', 'Bearer').json({ error: 'ADMIN_AUTH_FAILED', message: 'missing or wrong bearer token (see adminToken / NHA_ADMIN_TOKEN)' });
      return;
    }
    next();
  });
  admin.use(express.json({ limit: '16kb' }));
  admin.post('/switchover', (req, res) => {
    const to = typeof req.body?.to === 'string' ? req.body.to : null;
    res.status(202).json(d.agent.request('switchover', to));
  });
  admin.post('/failback', (_req, res) => {
    res.status(202).json(d.agent.request('failback'));
  });
  admin.post('/maintenance', (req, res) => {
    const on = req.body?.on;
    if (typeof on !== 'boolean') {
      res.status(400).json({ error: 'USAGE', message: 'expected a JSON body {"on": true|false}' });
      return;
    }
    res.json(d.agent.setMaintenance(on));
  });
  admin.get('/requests/:id', (req, res) => {
    const r = d.agent.getRequest(req.params.id);
    if (!r) res.status(404).json({ error: 'USAGE', message: 'no such request' });
    else res.json(r);
  });
  app.use('/admin', admin);

  // -- peer: HMAC only --
  const onReject = (reason: string, req: Request) =>
    d.bus.emit({ type: 'peer_auth_failed', severity: 'warning', message: `rejected ${req.method} ${req.originalUrl} from ${req.ip}: ${reason}` });
  for (const [name, router] of Object.entries(d.streamPeerRouters ?? {})) {
    // JSON bodies are parsed (and hashed) as usual; octet-stream bodies stay streams for the router.
    app.use(`/peer/${name}`, express.json({ verify: captureRawBody, limit: '64mb' }), requirePeerAuth(d.secret, { allowStream: true, onReject }), router);
  }
  const peer = express.Router();
  peer.use(express.json({ verify: captureRawBody, limit: '64mb' }), requirePeerAuth(d.secret, { onReject }));
  peer.post('/heartbeat', (req, res) => {
    const msg: unknown = req.body;
    if (!isHeartbeatMessage(msg)) {
      res.status(400).json({ error: 'USAGE', message: 'malformed heartbeat' });
      return;
    }
    res.json(d.agent.receiveHeartbeat(msg));
  });
  peer.post('/vote', (req, res) => {
    const { node, epoch } = req.body as { node?: unknown; epoch?: unknown };
    if (typeof node !== 'string' || !Number.isInteger(epoch)) {
      res.status(400).json({ error: 'USAGE', message: 'expected {node, epoch}' });
      return;
    }
    res.json(d.agent.receiveVote(node, epoch as number));
  });
  peer.post('/takeover', (req, res) => {
    const { node, epoch, reason } = req.body as { node?: unknown; epoch?: unknown; reason?: unknown };
    if (typeof node !== 'string' || !Number.isInteger(epoch)) {
      res.status(400).json({ error: 'USAGE', message: 'expected {node, epoch}' });
      return;
    }
    res.json(d.agent.receiveTakeover(node, epoch as number, typeof reason === 'string' ? reason : 'switchover'));
  });
  for (const [name, router] of Object.entries(d.peerRouters ?? {})) peer.use(`/${name}`, router);
  app.use('/peer', peer);

  app.use((_req, res) => {
    res.status(404).json({ error: 'NOT_FOUND', message: 'no such route (see docs/openapi.yaml)' });
  });
  return app;
}
