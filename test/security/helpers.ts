import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import type { Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Express } from 'express';
import { Registry } from 'prom-client';
import { createApp, type ApiDeps } from '../../src/api/app.js';
import type { Agent } from '../../src/cluster/agent.js';
import { EventBus } from '../../src/events/bus.js';
import type { HaEvent, Notifier } from '../../src/ports.js';
import { signingKey } from '../../src/peer/keyring.js';

export const randomSecret = () => randomBytes(32).toString('base64url');

/** The few agent calls the API makes, recorded. */
export function fakeAgent() {
  const calls: { kind: string; args: unknown[] }[] = [];
  const protocols: { node: string; protocol: number; release: string | null; problem: string | null }[] = [];
  const agent = {
    role: 'standby',
    epoch: 3,
    status: () => ({ healthy: true, replication: {} }),
    lagMs: () => 0,
    request: (...args: unknown[]) => (calls.push({ kind: 'request', args }), { id: 'r1', kind: args[0], state: 'pending', message: 'queued', createdAt: new Date().toISOString() }),
    setMaintenance: (on: boolean) => (calls.push({ kind: 'maintenance', args: [on] }), { id: 'm1', kind: 'maintenance', state: 'done', message: `maintenance ${on}` }),
    getRequest: () => undefined,
    receiveHeartbeat: (msg: { node: string }) => (calls.push({ kind: 'heartbeat', args: [msg] }), { state: { node: 'b', role: 'standby', epoch: 3 }, ack: true }),
    receiveVote: (node: string, epoch: number) => (calls.push({ kind: 'vote', args: [node, epoch] }), { granted: true, reason: 'ok', epoch }),
    receiveTakeover: (node: string, epoch: number) => (calls.push({ kind: 'takeover', args: [node, epoch] }), { accepted: true, reason: 'ok' }),
    // Kept apart from `calls`: every authenticated request reports its protocol version.
    peerProtocol: (node: string, protocol: number, release: string | null, problem: string | null) => void protocols.push({ node, protocol, release, problem }),
  };
  return { agent: agent as unknown as Agent, calls, protocols };
}

export function countingNotifier(): Notifier & { sent: HaEvent[] } {
  const sent: HaEvent[] = [];
  return { name: 'count', sent, send: async (e: HaEvent) => void sent.push(e) } as Notifier & { sent: HaEvent[] };
}

export async function listen(app: Express): Promise<{ server: Server; url: string; port: number }> {
  const server = await new Promise<Server>((resolve) => {
    const s = app.listen(0, '127.0.0.1', () => resolve(s));
  });
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : 0;
  return { server, url: `http://127.0.0.1:${port}`, port };
}

export function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}

/** A sidecar API in this process (node "b"), with a real event bus writing its history to a temp dir. */
export async function startApi(over: Partial<ApiDeps> = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'nha-sec-'));
  const { agent, calls, protocols } = fakeAgent();
  const notifier = countingNotifier();
  const historyFile = join(dir, 'events.jsonl');
  const bus = new EventBus('b', () => 3, { historyFile, ringSize: 500, notifiers: [notifier] });
  const secret = randomSecret();
  const adminToken = randomSecret();
  const app = createApp({ agent, bus, metrics: new Registry(), secret, adminToken, node: 'b', ...over });
  const { server, url, port } = await listen(app);
  return {
    url,
    port,
    server,
    secret: over.secret ?? secret,
    adminToken: over.adminToken === undefined ? adminToken : signingKey(over.adminToken),
    bus,
    calls,
    protocols,
    notifier,
    historyFile,
    dir,
    async close() {
      await closeServer(server);
      await bus.flush();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export function heartbeat(node: string, extra: Record<string, unknown> = {}) {
  return { node, role: 'primary', epoch: 3, healthy: true, caughtUp: true, takeoverOffer: null, sentAt: Date.now(), ...extra };
}
