/**
 * The dashboard in a real headless Chromium (Debian `chromium`, driven by playwright-core) against a
 * running two-node cluster on loopback (real sidecars, witness, demo services, bind-proxy VIP):
 *  - it shows both nodes' roles; kill -9 the primary and the page shows the new primary, and the old one
 *    as dead, within 2 s of the failover, without a reload;
 *  - a switchover from the page works with the admin token, and a wrong token is refused (401 shown,
 *    nothing changes);
 *  - the page of a node whose sidecar dies says so and links to the peer's dashboard;
 *  - no console errors (beyond the failed requests to a node that was killed on purpose).
 * Screenshots go to test-artifacts/ui/. Without a browser the suite skips and says why; .ci/run installs
 * one (scripts/install-system-deps.sh) and sets NHA_REQUIRE_BROWSER, so there it fails instead.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser, type ConsoleMessage, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN_TOKEN, Cluster } from '../../fixtures/cluster.js';

const CANDIDATES = [process.env.NHA_CHROMIUM, '/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome'].filter((p): p is string => !!p);
const browserPath = CANDIDATES.find((p) => existsSync(p)) ?? null;
if (!browserPath) {
  const msg = `dashboard browser tests: no Chromium found (looked at ${CANDIDATES.join(', ')}); install Debian chromium (scripts/install-system-deps.sh, as root) or set NHA_CHROMIUM`;
  if (process.env.NHA_REQUIRE_BROWSER) throw new Error(msg);
  console.warn(`SKIPPED ${msg}`);
}
const ARTIFACTS = join(process.cwd(), 'test-artifacts', 'ui');

/**
 * Console errors and uncaught page errors, except failed requests the test causes on purpose: to a
 * node it killed (`killed`), and the 401 of the wrong-token step (`expected`).
 */
function watchConsole(page: Page, killed: () => string[], expected: RegExp[] = []): string[] {
  const errors: string[] = [];
  page.on('console', (m: ConsoleMessage) => {
    if (m.type() !== 'error') return;
    const text = `${m.text()} ${m.location().url}`;
    if (/Failed to load resource|net::ERR_/.test(text) && killed().some((o) => text.includes(o))) return;
    if (expected.some((re) => re.test(text))) return;
    errors.push(text);
  });
  page.on('pageerror', (e) => errors.push(`pageerror: ${e.message}`));
  return errors;
}

const roleOf = (page: Page, node: string) => page.locator(`.card[data-node="${node}"]`).getAttribute('data-role', { timeout: 1000 }).catch(() => null);

async function until(what: string, fn: () => Promise<boolean>, timeoutMs: number, stepMs = 25): Promise<number> {
  const t0 = performance.now();
  while (performance.now() - t0 < timeoutMs) {
    if (await fn()) return performance.now() - t0;
    await new Promise((r) => setTimeout(r, stepMs));
  }
  throw new Error(`timed out after ${timeoutMs} ms: ${what}`);
}

describe.skipIf(!browserPath)('dashboard in headless Chromium', () => {
  let c: Cluster;
  let browser: Browser;
  const killed: string[] = [];

  beforeAll(async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    // With config-file sync, so the page has a data path to show on both nodes.
    c = new Cluster({ files: true });
    await c.start();
    browser = await chromium.launch({ executablePath: browserPath!, headless: true, args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
  });
  afterAll(async () => {
    await browser?.close();
    await c?.stop();
  });

  it('shows the roles; after kill -9 of the primary, the new primary and the dead node within 2 s, without a reload', async () => {
    const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
    const errors = watchConsole(page, () => killed);
    await page.goto(`${c.nodes.b.url}/ui`);
    await until('a primary, b standby on the page', async () => (await roleOf(page, 'a')) === 'primary' && (await roleOf(page, 'b')) === 'standby', 15_000);
    await expect.poll(() => page.locator('.card[data-node="witness"]').count()).toBe(1);
    await expect.poll(() => page.locator('#paths tbody tr').first().textContent(), { timeout: 5000 }).toMatch(/^files.*receiver.*sender/);
    await expect.poll(() => page.locator('#stream-state').textContent(), { timeout: 5000 }).toContain('live from b');
    await page.screenshot({ path: join(ARTIFACTS, '1-running.png'), fullPage: true });

    killed.push(c.nodes.a.url);
    const tKill = performance.now();
    c.kill('a');
    // When the cluster itself says b is primary (read independently from b's /status) ...
    await c.waitFor((_a, b) => b?.role === 'primary', 15_000, 'b primary after kill -9 of a');
    const tPromoted = performance.now();
    // ... the page shows it, and a as dead, within 2 s, without a reload.
    const shownMs = await until('b primary and a dead on the page', async () => (await roleOf(page, 'b')) === 'primary' && (await roleOf(page, 'a')) === 'dead', 2000);
    console.log(`dashboard: failover shown ${Math.round(tPromoted - tKill + shownMs)} ms after the kill, ${Math.round(shownMs)} ms after b reported primary`);
    await expect.poll(() => page.locator('#vip').getAttribute('data-holder'), { timeout: 2000 }).toBe('b');
    // The failover event arrived over the stream; its report opens from the timeline.
    const failover = page.locator('#events li[data-type="failover"]').first();
    await failover.waitFor({ timeout: 5000 });
    await failover.click();
    await expect.poll(() => page.locator('#report').textContent()).toContain('detect (peer silent → declared dead)');
    // The takeover's gap is on the chart.
    await expect.poll(() => page.locator('#gaps-chart').getAttribute('data-points'), { timeout: 5000 }).toBe('1');
    expect(await page.locator('#gaps-chart canvas').count()).toBeGreaterThan(0);
    await page.screenshot({ path: join(ARTIFACTS, '2-after-failover.png'), fullPage: true });
    expect(errors).toEqual([]);
    await page.close();
  });

  it('a switchover from the page works with the admin token; a wrong token is refused and changes nothing', async () => {
    killed.splice(0);
    c.startNode('a');
    await c.waitFor((a, b) => a?.role === 'standby' && b?.role === 'primary' && b?.peers?.[0]?.caught_up === true, 60_000, 'a back as a caught-up standby');
    const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
    const errors = watchConsole(page, () => killed, [/status of 401 \(Unauthorized\) \S+\/admin\/switchover$/]);
    await page.goto(`${c.nodes.b.url}/ui`);
    await until('b primary on the page', async () => (await roleOf(page, 'b')) === 'primary' && (await roleOf(page, 'a')) === 'standby', 10_000);
    expect(await page.locator('#actions').isHidden()).toBe(true); // read-only without a token

    // A wrong token: the confirm dialog, then 401 shown plainly; the roles stay as they are.
    await page.fill('#token', 'not-the-token');
    await page.click('#unlock');
    await page.click('#actions button[data-action="switchover"]');
    await page.click('#confirm-ok');
    await expect.poll(() => page.locator('#action-result').textContent(), { timeout: 5000 }).toContain('not accepted (401)');
    await new Promise((r) => setTimeout(r, 1500));
    expect((await c.status('b'))?.role).toBe('primary');
    expect(await c.events('b', 'switchover')).toEqual([]);
    expect(await c.events('a', 'switchover')).toEqual([]);
    await page.screenshot({ path: join(ARTIFACTS, '3-wrong-token.png'), fullPage: true });

    // Cancel in the dialog sends nothing.
    await page.click('#lock');
    await page.fill('#token', ADMIN_TOKEN);
    await page.click('#unlock');
    await page.click('#actions button[data-action="switchover"]');
    await page.click('#confirm button[value="cancel"]');
    await new Promise((r) => setTimeout(r, 500));
    expect(await c.events('b', 'handover_started')).toEqual([]);

    // The real token: the request runs and the page shows a as primary.
    await page.click('#actions button[data-action="switchover"]');
    await page.click('#confirm-ok');
    await expect.poll(() => page.locator('#action-result').textContent(), { timeout: 30_000 }).toMatch(/switchover: done/);
    await until('a primary on the page', async () => (await roleOf(page, 'a')) === 'primary' && (await roleOf(page, 'b')) === 'standby', 10_000);
    expect((await c.status('a'))?.role).toBe('primary');
    await page.screenshot({ path: join(ARTIFACTS, '4-after-switchover.png'), fullPage: true });
    expect(errors).toEqual([]);
    await page.close();
  });

  it('the page of a node whose sidecar dies says so and links to the peer’s dashboard, which shows it dead', async () => {
    const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
    const errors = watchConsole(page, () => killed);
    await page.goto(`${c.nodes.b.url}/ui`);
    await until('a primary, b standby on b’s page', async () => (await roleOf(page, 'a')) === 'primary' && (await roleOf(page, 'b')) === 'standby', 10_000);
    killed.push(c.nodes.b.url);
    c.kill('b');
    await expect.poll(() => page.locator('#banner').textContent(), { timeout: 5000 }).toContain('b does not answer');
    const link = page.locator('#banner a[data-peer="a"]');
    await link.click();
    await page.waitForURL(/\/ui$/);
    await until('a’s page: a primary, b dead', async () => (await roleOf(page, 'a')) === 'primary' && (await roleOf(page, 'b')) === 'dead', 10_000);
    await page.screenshot({ path: join(ARTIFACTS, '5-own-node-dead.png'), fullPage: true });
    expect(errors).toEqual([]);
    await page.close();
  });
});
