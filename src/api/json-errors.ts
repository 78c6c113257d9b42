import type { Express, NextFunction, Request, Response } from 'express';
import { apiError, type ErrorCode } from '../errors.js';

/** Answer with the documented JSON error for `code` (its status from the error registry, src/errors.ts). */
export function sendError(res: Response, code: ErrorCode, message: string, headers: Record<string, string> = {}): void {
  const e = apiError(code, message);
  res.status(e.status).set(headers).json(e.body);
}

/**
 * One error contract for every HTTP answer the sidecar and the witness give: the documented JSON
 * `Error` ({error, message}) with a stable code, never Express's HTML page and never a stack trace.
 */

interface Layer {
  route?: { methods: Record<string, boolean> };
  handle?: { stack?: Layer[] };
  path?: string;
  match(path: string): boolean;
}

/** Methods some route answers for `path` (walking mounted routers), so a wrong method gets 405. */
function allowedMethods(stack: Layer[] | undefined, path: string, out = new Set<string>()): Set<string> {
  for (const layer of stack ?? []) {
    if (!layer.match(path)) continue;
    if (layer.route) {
      for (const [m, on] of Object.entries(layer.route.methods)) if (on && m !== '_all') out.add(m.toUpperCase());
      if (out.has('GET')) out.add('HEAD');
    } else if (layer.handle?.stack) {
      const rest = path.slice((layer.path ?? '').length) || '/';
      allowedMethods(layer.handle.stack, rest.startsWith('/') ? rest : `/${rest}`, out);
    }
  }
  return out;
}

/** Last handler: 405 (with Allow) for a known path and another method, else 404. */
export function notFoundHandler(app: Express) {
  return (req: Request, res: Response) => {
    const stack = (app as unknown as { _router?: { stack: Layer[] } })._router?.stack;
    const allowed = allowedMethods(stack, req.path);
    if (allowed.size && !allowed.has(req.method)) {
      sendError(res, 'METHOD_NOT_ALLOWED', `${req.method} is not supported on ${req.path} (expected ${[...allowed].sort().join(' or ')})`, { allow: [...allowed].sort().join(', ') });
      return;
    }
    sendError(res, 'NOT_FOUND', 'no such route (see docs/openapi.yaml)');
  };
}

/** Error middleware: body-parser and routing errors as JSON with a stable code; anything else is a 500 without details. */
export function jsonErrorHandler(onInternal?: (err: unknown, req: Request) => void) {
  return (err: unknown, req: Request, res: Response, _next: NextFunction) => {
    const e = (err ?? {}) as { type?: string; status?: number; statusCode?: number };
    const status = e.status ?? e.statusCode ?? 500;
    let code = 'INTERNAL';
    let message = 'internal error (the sidecar log has the details)';
    if (e.type === 'entity.parse.failed') [code, message] = ['BAD_JSON', 'the request body is not valid JSON'];
    else if (e.type === 'entity.too.large') [code, message] = ['BODY_TOO_LARGE', 'the request body is larger than this route accepts'];
    else if (e.type === 'encoding.unsupported' || e.type === 'charset.unsupported') [code, message] = ['UNSUPPORTED_MEDIA_TYPE', 'unsupported content encoding or charset'];
    else if (status >= 400 && status < 500) [code, message] = ['BAD_REQUEST', 'the request could not be read'];
    else onInternal?.(err, req);
    if (res.headersSent) {
      res.destroy();
      return;
    }
    if (!req.complete) res.set('connection', 'close');
    res.status(status >= 400 && status < 600 ? status : 500).json({ error: code, message });
  };
}
