/**
 * GET /events/stream: the event bus as Server-Sent Events, for the dashboard and for anyone who would
 * rather be told than poll /events. Each event is one `message` with `id:` its sequence number and
 * `data:` the event as JSON. A new stream first replays the newest `backlog` events kept in memory (20
 * unless asked); a reconnecting client (the browser sends `Last-Event-ID`) gets what it missed instead,
 * as far as memory keeps it. A comment line every `pingMs` keeps proxies from closing an idle stream.
 *
 * Bounded: at most `maxStreams` open at once (503 beyond), and a client that stops reading is cut once
 * `maxBufferedBytes` wait for it; it reconnects and resumes from its last id.
 */
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

  constructor(
    private readonly bus: EventBus,
    private readonly o: EventStreamOptions = {},
  ) {}

  get count(): number {
    return this.open.size;
  }

  /** Ends every open stream (server shutdown: an open stream would keep close() waiting). */
  closeAll(): void {
    for (const res of this.open) res.end();
    this.open.clear();
  }

  handle = (req: Request, res: Response): void => {
    const backlog = req.query.backlog === undefined ? 20 : Number(req.query.backlog);
    if (!Number.isInteger(backlog) || backlog < 0 || backlog > 500) {
      sendError(res, 'USAGE', 'backlog must be a whole number from 0 to 500');
      return;
    }
    const types = typeof req.query.type === 'string' && req.query.type ? new Set(req.query.type.split(',')) : null;
    const lastIdRaw = req.headers['last-event-id'];
    const lastId = typeof lastIdRaw === 'string' && /^-?\d+$/.test(lastIdRaw.trim()) ? Number(lastIdRaw.trim()) : null;
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
      res.write(`id: ${seq}\ndata: ${JSON.stringify(e)}\n\n`);
      if (res.writableLength > maxBuffered) res.end(); // a client that does not read: it resumes from its last id
    };
    res.write('retry: 2000\n\n');
    const earlier = lastId !== null ? this.bus.since(lastId) : backlog > 0 ? this.bus.recentWithSeq(types ? 500 : backlog) : [];
    const replay = types ? earlier.filter((x) => types.has(x.e.type)) : earlier;
    for (const x of lastId !== null ? replay : replay.slice(-backlog)) send(x.e, x.seq);
    const off = this.bus.subscribe(send);
    const ping = setInterval(() => res.write(': ping\n\n'), this.o.pingMs ?? 15_000);
    ping.unref();
    const done = () => {
      off();
      clearInterval(ping);
      this.open.delete(res);
    };
    res.on('close', done);
    res.on('error', done);
  };
}
