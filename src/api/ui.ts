/**
 * GET /ui: the dashboard, a static page (src/api/ui/) that reads /status, /availability and
 * /events/stream of the node that serves it (the peer's view is on the peer's own /ui). uPlot
 * (an npm dependency, served from this package) draws the chart; nothing is fetched from elsewhere.
 * The page is read-only until an admin token is entered; the token stays in the tab's sessionStorage
 * and goes as a bearer header to /admin, as from any other client.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import express, { type Response, type Router } from 'express';

/** The page's own files: next to this module (run from src/), or in the source tree (run from dist/). */
function uiDir(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  for (const dir of [join(here, 'ui'), join(here, '..', '..', '..', 'src', 'api', 'ui')]) {
    try {
      readFileSync(join(dir, 'index.html'));
      return dir;
    } catch {
      // next candidate
    }
  }
  throw new Error(`dashboard files not found next to ${here}`);
}

const TYPES: Record<string, string> = {
  'index.html': 'text/html; charset=utf-8',
  'app.js': 'text/javascript; charset=utf-8',
  'style.css': 'text/css; charset=utf-8',
  'uPlot.iife.min.js': 'text/javascript; charset=utf-8',
  'uPlot.min.css': 'text/css; charset=utf-8',
};

/** Strict: only this origin's scripts, styles and requests; no inline script, no framing. */
export const CONTENT_SECURITY_POLICY =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/** The router for /ui, with the files read once at start (a few tens of kB). */
export function uiRouter(): Router {
  const dir = uiDir();
  const require = createRequire(import.meta.url);
  const uplot = dirname(require.resolve('uplot/dist/uPlot.iife.min.js'));
  const files = new Map<string, Buffer>();
  for (const name of ['index.html', 'app.js', 'style.css']) files.set(name, readFileSync(join(dir, name)));
  for (const name of ['uPlot.iife.min.js', 'uPlot.min.css']) files.set(name, readFileSync(join(uplot, name)));
  const send = (res: Response, name: string) => {
    res
      .status(200)
      .set({
        'content-type': TYPES[name],
        'cache-control': 'no-cache',
        'content-security-policy': CONTENT_SECURITY_POLICY,
        'x-content-type-options': 'nosniff',
        'referrer-policy': 'no-referrer',
        'x-frame-options': 'DENY',
      })
      .send(files.get(name));
  };
  const r = express.Router({ strict: true });
  r.get('/', (_req, res) => send(res, 'index.html'));
  r.get('/:name', (req, res, next) => (files.has(req.params.name) ? send(res, req.params.name) : next()));
  return r;
}
