import { timingSafeEqual } from 'node:crypto';
import express, { type NextFunction, type Request, type Response, type Router } from 'express';
import type { Registry } from 'prom-client';
import type { Agent, RequestRecord } from '../cluster/agent.js';
import { isHeartbeatMessage } from '../cluster/heartbeat.js';
import type { EventBus } from '../events/bus.js';
import { NonceCache, refuse, requirePeerAuth, SMALL_BODY_BYTES, type PeerRequest } from '../peer/auth.js';
import { ReplayGuard } from '../peer/replay.js';
import { keysOf, type KeyInput, type KeyUse } from '../peer/keyring.js';
import type { HaEvent } from '../ports.js';
import { AuthFailures } from './auth-failures.js';
import { availabilityHandler } from './availability.js';
import { EventStreams } from './event-stream.js';
import { jsonErrorHandler, notFoundHandler, sendError } from './json-errors.js';
import { uiRouter } from './ui.js';

export interface ApiDeps {
  agent: Agent;
  bus: EventBus;
  metrics: Registry;
  /** Lease key(s): heartbeats, votes and takeover offers (`secret`; the witness holds it too). */
  secret: KeyInput;
  /** Data-path key(s): every feature router under /peer (`dataSecret`); `secret` when not given. */
  dataSecret?: KeyInput;
  /** Bearer token(s) of /admin: any of them is accepted (a list while rotating). */
  adminToken: KeyInput;
  /** Which key each peer signs with, per key (lease, data): GET /admin/keys (key ids are for admins only). */
  keyUse?: { lease: KeyUse; data: KeyUse | null };
  /** Feature routers mounted under /peer/<name> behind HMAC authentication. */
  peerRouters?: Record<string, Router>;
  /** Feature routers that accept streamed (unsigned-body) requests, checked by content hash. */
  streamPeerRouters?: Record<string, Router>;
  /** This node's name: signs peer replies; a request claiming it is refused as a reflection. */
  node?: string;
  /** Refuses peer requests signed before this process started (shared with the UDP receiver). */
  replay?: ReplayGuard;
  /** Called with an unexpected error (answered 500 without details). */
  onInternalError?: (err: unknown, req: Request) => void;
  /** The event history for GET /availability (default: the events kept in memory). */
  history?: () => Promise<HaEvent[]>;
}

/**
 * Body limits of the feature routes (hashed JSON bodies; streamed ones are checked by their routes).
 * File batches carry small files inline; everything else is a short request.
 */
const DATA_BODY_BYTES: Record<string, number> = { files: 64 * 1024 * 1024, default: 1024 * 1024 };

function tokenOk(header: string | undefined, tokens: KeyInput): boolean {
  if (!header?.startsWith('Bearer ')) return false;
  const given = Buffer.from(header.slice(7));
  return keysOf(tokens).some((token) => {
    const want = Buffer.from(token);
    return given.length === want.length && timingSafeEqual(given, want);
  });
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
    // A primary draining before a planned move answers 503 while it still serves (timings.handoverDrainMs).
    const draining = d.agent.draining === true;
    health(res, d.agent.role === 'primary' && !draining, draining ? { draining } : {});
  });
  app.get('/standby', (req, res) => {
    const max = req.query.max_lag_ms;
    let maxLag: number | null = null;
    if (max !== undefined) {
      maxLag = Number(max);
      if (!Number.isFinite(maxLag) || maxLag < 0) {
        sendError(res, 'USAGE', 'max_lag_ms must be a non-negative number of milliseconds');
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
    const limit = req.query.limit === undefined ? 100 : Number(req.query.limit);
    if (!Number.isInteger(limit) || limit < 1 || limit > 1000) {
      sendError(res, 'USAGE', 'limit must be a whole number from 1 to 1000');
      return;
    }
    const types = typeof req.query.type === 'string' ? req.query.type.split(',') : undefined;
    res.json({ events: d.bus.recent({ limit, types }) });
  });
  const streams = new EventStreams(d.bus);
  app.get('/events/stream', streams.handle);
  app.get('/availability', availabilityHandler(d.bus, d.history));
  app.use('/ui', uiRouter());

  // -- admin: bearer token, checked before any body is read; 401 changes nothing --
  const failures = new AuthFailures((e) => d.bus.emit(e));
  const source = (req: Request) => req.socket.remoteAddress ?? 'unknown';
  const admin = express.Router();
  admin.use((req: Request, res: Response, next: NextFunction) => {
    if (!tokenOk(req.headers.authorization, d.adminToken)) {
      failures.record('admin', source(req), 'missing or wrong bearer token', `${req.method} ${req.originalUrl}`);
      if (failures.limited('admin', source(req))) {
        refuse(req, res, 429, 'AUTH_RATE_LIMITED', 'too many failed admin requests from this address; wait a minute', { 'retry-after': '60' });
      } else {
        refuse(req, res, 401, 'ADMIN_AUTH_FAILED', 'missing or wrong bearer token (see adminToken / NHA_ADMIN_TOKEN)', { 'www-authenticate': 'Bearer' });
      }
      return;
    }
    next();
  });
  admin.use(express.json({ limit: '16kb' }));
  // 202 with the queued request, or 409 when it is refused at once (a planned move already queued or
  // running, the hold-down after the last one): the body is the request record and an Error.
  const answer = (res: Response, rec: RequestRecord) =>
    rec.state === 'refused' ? res.status(409).json({ error: 'REQUEST_REFUSED', ...rec }) : res.status(202).json(rec);
  admin.post('/switchover', (req, res) => {
    const raw = req.body?.to;
    if (raw !== undefined && raw !== null && (typeof raw !== 'string' || raw === '')) {
      sendError(res, 'USAGE', 'to must be the name of the target node (a non-empty string), or left out for the peer');
      return;
    }
    const to = typeof raw === 'string' ? raw : null;
    answer(res, d.agent.request('switchover', to));
  });
  admin.post('/failback', (_req, res) => {
    answer(res, d.agent.request('failback'));
  });
  // Promote this node although the data-holder record does not name it: whatever the holders
  // acknowledged and this node lacks is lost. The body must say so explicitly.
  admin.post('/promote', (req, res) => {
    if (req.body?.acceptDataLoss !== true) {
      sendError(res, 'USAGE', 'expected a JSON body {"acceptDataLoss": true}: a forced promotion loses every acknowledged write this node lacks');
      return;
    }
    answer(res, d.agent.request('promote'));
  });
  admin.post('/maintenance', (req, res) => {
    const on = req.body?.on;
    const node = req.body?.node;
    if (typeof on !== 'boolean' || (node !== undefined && typeof node !== 'string')) {
      sendError(res, 'USAGE', 'expected a JSON body {"on": true|false} (cluster-wide) or {"on": true|false, "node": NAME} (that node alone)');
      return;
    }
    const me = node === undefined ? null : (d.node ?? d.agent.d.config.node);
    if (node !== undefined && node !== me) {
      sendError(res, 'USAGE', `"node": ${JSON.stringify(node)} is not this node (${me}): a per-node pause is set on the node itself; send it to ${node}'s URL`);
      return;
    }
    res.json(d.agent.setMaintenance(on, node === undefined ? 'cluster' : 'node'));
  });
  // Key ids (SHA-256 prefixes) let an offline guess of a weak key be checked: admins only, not /status.
  admin.get('/keys', (_req, res) => {
    const k = d.keyUse;
    res.set('cache-control', 'no-store').json({ lease: k?.lease.status() ?? null, data: k?.data?.status() ?? null });
  });
  admin.get('/requests/:id', (req, res) => {
    const r = d.agent.getRequest(req.params.id);
    if (!r) sendError(res, 'NOT_FOUND', `no request ${req.params.id} on this node (unknown, or no longer kept: requests live in memory, the newest only, until a restart)`);
    else res.json(r);
  });
  app.use('/admin', admin);

  // -- peer: HMAC, checked before any body is read; each route reads at most its own limit --
  const nonces = new NonceCache();
  const replay = d.replay ?? new ReplayGuard(null);
  const peerAuth = (o: { allowStream?: boolean; maxBodyBytes?: number; data?: boolean } = {}) =>
    requirePeerAuth(o.data ? (d.dataSecret ?? d.secret) : d.secret, {
      ...o,
      keyUse: o.data ? (d.keyUse?.data ?? d.keyUse?.lease) : d.keyUse?.lease,
      nonces,
      replay,
      self: d.node ?? null,
      onReject: (reason, req) => failures.record('peer', source(req), reason, `${req.method} ${req.originalUrl}`),
      limited: (req) => failures.limited('peer', source(req)),
      onProtocol: (node, protocol, release, problem) => d.agent.peerProtocol(node, protocol, release, problem),
    });
  const small = peerAuth({ maxBodyBytes: SMALL_BODY_BYTES });
  for (const [name, router] of Object.entries(d.streamPeerRouters ?? {})) {
    // Hashed JSON bodies are read after the signature check; octet-stream bodies stay streams for the router.
    app.use(`/peer/${name}`, peerAuth({ allowStream: true, maxBodyBytes: DATA_BODY_BYTES[name] ?? DATA_BODY_BYTES.default, data: true }), router);
  }
  const peer = express.Router();
  peer.post('/heartbeat', small, (req: PeerRequest, res) => {
    const msg: unknown = req.body;
    if (!isHeartbeatMessage(msg)) {
      sendError(res, 'USAGE', 'malformed heartbeat');
      return;
    }
    // The signed sender must be the node the heartbeat speaks for (as over UDP).
    if (msg.node !== req.peerNode) {
      failures.record('peer', source(req), `heartbeat for node ${msg.node} signed by ${req.peerNode}`, `${req.method} ${req.originalUrl}`);
      sendError(res, 'PEER_AUTH_FAILED', `heartbeat speaks for ${msg.node} but is signed by ${req.peerNode}`);
      return;
    }
    res.json(d.agent.receiveHeartbeat(msg));
  });
  peer.post('/vote', small, (req: PeerRequest, res) => {
    const { node, epoch } = req.body as { node?: unknown; epoch?: unknown };
    if (typeof node !== 'string' || !Number.isInteger(epoch)) {
      sendError(res, 'USAGE', 'expected {node, epoch}');
      return;
    }
    if (node !== req.peerNode) {
      sendError(res, 'PEER_AUTH_FAILED', `vote request for ${node} signed by ${req.peerNode}`);
      return;
    }
    res.json(d.agent.receiveVote(node, epoch as number));
  });
  peer.post('/takeover', small, (req: PeerRequest, res) => {
    const { node, epoch, reason } = req.body as { node?: unknown; epoch?: unknown; reason?: unknown };
    if (typeof node !== 'string' || !Number.isInteger(epoch)) {
      sendError(res, 'USAGE', 'expected {node, epoch}');
      return;
    }
    if (node !== req.peerNode) {
      sendError(res, 'PEER_AUTH_FAILED', `takeover offer from ${node} signed by ${req.peerNode}`);
      return;
    }
    res.json(d.agent.receiveTakeover(node, epoch as number, typeof reason === 'string' ? reason : 'switchover'));
  });
  for (const [name, router] of Object.entries(d.peerRouters ?? {})) peer.use(`/${name}`, peerAuth({ maxBodyBytes: DATA_BODY_BYTES[name] ?? DATA_BODY_BYTES.default, data: true }), router);
  // Anything else under /peer is authenticated first, then answered 404 or 405 below.
  peer.use(small);
  app.use('/peer', peer);

  app.use(notFoundHandler(app));
  app.use(jsonErrorHandler(d.onInternalError));
  return app;
}
