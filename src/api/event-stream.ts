/**
 * GET /events/stream: the event bus as Server-Sent Events, for the dashboard and for anyone who would
 * rather be told than poll /events. Each event is one `message` with `id: <boot>.<seq>` (this process's
 * random boot id and the event's sequence number) and `data:` the event as JSON. A new stream first
 * replays the newest `backlog` events kept in memory (20 unless asked); a reconnecting client (the
 * browser sends `Last-Event-ID`) gets what it missed instead, as far as memory keeps it. An id of
 * another boot (the sidecar restarted meanwhile, numbering anew) gets the backlog, as a new stream does.
 * A comment line every `pingMs` keeps proxies from closing an idle stream.
 *
 * Bounded: at most `maxStreams` open at once (503 beyond), and a client that stops reading is
 * disconnected (its socket destroyed, its buffer freed) once `maxBufferedBytes` wait for it; it
 * reconnects and resumes from its last id.
 */
import { randomBytes } from 'node:crypto';
import type { Request, Response } from 'express';
import type { EventBus } from '../events/bus.js';
import type { HaEvent } from '../ports.js';
import { sendError } from './json-errors.js';

export interface EventStreamOptions {
  maxStreams?: number;
  pingMs?: number;
  maxBufferedBytes?: number;
}

export class EventStreams {
  private readonly open = new Set<Response>();
  /** Tells this process's ids from those of an earlier run of the sidecar. */
  readonly boot = randomBytes(4).toString('hex');

  constructor(
    private readonly bus: EventBus,
    private readonly o: EventStreamOptions = {},
  ) {}

  handle = (req: Request, res: Response): void => {
    const rawBacklog = req.query.backlog;
    const backlog = rawBacklog === undefined ? 20 : typeof rawBacklog === 'string' && /^\d{1,3}$/.test(rawBacklog) ? Number(rawBacklog) : NaN;
    if (!(backlog >= 0 && backlog <= 500)) {
      sendError(res, 'USAGE', 'backlog must be a whole number from 0 to 500');
      return;
    }
    const types = typeof req.query.type === 'string' && req.query.type ? new Set(req.query.type.split(',')) : null;
    const lastId = this.lastIdOf(req.headers['last-event-id']);
    if (req.method === 'HEAD') {
      // The headers a stream would start with, and no stream: it would hold a slot and never end.
      res.status(200).set({ 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store' }).end();
      return;
    }
    if (this.open.size >= (this.o.maxStreams ?? 32)) {
      res.set('retry-after', '10');
      sendError(res, 'TOO_MANY_STREAMS', `too many event streams open (${this.open.size}); try again later or poll /events`);
      return;
    }
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
    res.flushHeaders();
    req.socket.setNoDelay(true);
    this.open.add(res);
    const maxBuffered = this.o.maxBufferedBytes ?? 1024 * 1024;
    const send = (e: HaEvent, seq: number) => {
      if (types && !types.has(e.type)) return;
      if (res.destroyed) return;
      res.write(`id: ${this.boot}.${seq}\ndata: ${JSON.stringify(e)}\n\n`);
      // A client that does not read: end() would only queue behind what waits, and keep the socket and
      // its buffer; destroy frees both at once. It reconnects and resumes from its last id.
      if (res.writableLength > maxBuffered) res.destroy();
    };
    res.write('retry: 2000\n\n');
    const earlier = lastId !== null ? this.bus.since(lastId) : backlog > 0 ? this.bus.recentWithSeq(types ? 500 : backlog) : [];
    const replay = types ? earlier.filter((x) => types.has(x.e.type)) : earlier;
    for (const x of lastId !== null ? replay : replay.slice(-backlog)) send(x.e, x.seq);
    const off = this.bus.subscribe(send);
    const ping = setInterval(() => void (res.destroyed || res.write(': ping\n\n')), this.o.pingMs ?? 15_000);
    ping.unref();
    const done = () => {
      off();
      clearInterval(ping);
      this.open.delete(res);
    };
    res.on('close', done);
    res.on('error', done);
  };

  /** The sequence number a Last-Event-ID of this boot names, or null (none, garbage, another boot). */
  private lastIdOf(raw: string | string[] | undefined): number | null {
    const m = typeof raw === 'string' ? /^([0-9a-f]{8})\.(-?\d{1,15})$/.exec(raw.trim()) : null;
    return m && m[1] === this.boot ? Number(m[2]) : null;
  }
}
