// tests/browser/dashboard.mjs — the browser half of tests/integration/dashboard.sh (read its header first).
// Environment: DASH (the dashboard's origin), FAST and SLOW (the proxies' access URLs), PW (the owner's
// password to create), SHOTS (screenshot folder), CTL (the request folder the shell serves), NODE_MODULES
// (where playwright-core is); DASH_DEBUG=1 prints every console message of every page. Prints "ok - ..."
// per check; exits non-zero at the first failure (with screenshots and each page's latency map).
import { createRequire } from 'node:module';
import fs from 'node:fs';
import path from 'node:path';

const require = createRequire(path.join(process.env.NODE_MODULES, 'x.js'));
const { chromium } = require('playwright-core');
const { DASH, FAST, SLOW, PW, SHOTS, CTL } = process.env;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const ok = (msg) => console.log(`ok - ${msg}`);
const note = (msg) => console.log(`note ${msg}`);
class Fail extends Error {}
const check = (cond, msg) => {
  if (!cond) throw new Fail(msg);
};

// Asks the shell to do something (start or stop a process, change a relay's delay) and waits for "ok".
async function ask(cmd, limitMs = 90_000) {
  fs.writeFileSync(path.join(CTL, 'req.tmp'), cmd);
  fs.renameSync(path.join(CTL, 'req.tmp'), path.join(CTL, 'req'));
  const ack = path.join(CTL, 'ack');
  for (let t = 0; t < limitMs; t += 100) {
    if (fs.existsSync(ack)) {
      const a = fs.readFileSync(ack, 'utf8').trim();
      fs.unlinkSync(ack);
      check(a === 'ok', `request ${cmd}: ${a}`);
      return;
    }
    await sleep(100);
  }
  throw new Fail(`no answer to request ${cmd}`);
}

// Waits until fn() (in node) returns a truthy value; its value, or a failure naming what.
async function until(fn, what, limitMs = 15_000, stepMs = 200) {
  const start = Date.now();
  let last;
  while (Date.now() - start < limitMs) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    await sleep(stepMs);
  }
  throw new Fail(`${what} (after ${limitMs} ms; last: ${last instanceof Error ? last.message : JSON.stringify(last)})`);
}

// A dashboard page: on the dashboard's origin, and not a workspace app served there under /@user/ws/apps/.
const dashboardPage = (url) => url.startsWith(DASH) && !/^\/@[^/]+\/[^/]+\/apps\//.test(new URL(url).pathname);

// axe-core's accessibility rules, run on every dashboard page that gets a screenshot. It is evaluated
// through the DevTools protocol, which the pages' CSP does not apply to (no script is added to the page).
const axeSource = fs.readFileSync(path.join(process.env.NODE_MODULES, 'axe-core', 'axe.min.js'), 'utf8');
const a11y = [];
let a11yPages = 0;
async function accessibility(page, name) {
  if (!dashboardPage(page.url())) return;
  a11yPages++;
  await page.evaluate(`${axeSource};0`);
  const res = await page.evaluate(() => window.axe.run(document, { resultTypes: ['violations'] }));
  for (const v of res.violations) {
    if (v.impact !== 'serious' && v.impact !== 'critical') continue;
    a11y.push(`${name}: ${v.id} (${v.impact}): ${v.help}: ${v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join(', ')}`);
  }
}

let shot = 0;
async function screenshot(page, name) {
  shot++;
  const file = path.join(SHOTS, `${String(shot).padStart(2, '0')}-${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  if (name !== 'failure') await accessibility(page, name);
}

// Console errors and page errors of every page. Network failures of the probes to a proxy that the test
// itself stopped are expected (Chromium logs a failed fetch as a console error) and listed separately.
const problems = [];
let expectedDown = null; // an origin whose failed loads are expected right now
let expected401 = false; // the deliberate wrong password: the sign-in form answers 401
function watch(page) {
  page.on('console', (m) => {
    if (process.env.DASH_DEBUG) console.log(`debug ${new Date().toISOString()} ${page.url()} ${m.type()}: ${m.text()} ${(m.location() || {}).url}`);
    if (m.type() !== 'error' && m.type() !== 'warning') return;
    if (!dashboardPage(page.url())) return; // an app's own page (through a region) is not the dashboard's
    const where = (m.location() && m.location().url) || '';
    if (expected401 && /status of 401/.test(m.text()) && where === `${DASH}/login`) return;
    if (expectedDown && m.type() === 'error' && /net::ERR_|Failed to fetch/.test(m.text()) && where.startsWith(expectedDown)) {
      return;
    }
    // A terminal socket to a stopped or just restarted proxy (the agent not attached to it yet: 404), which
    // the page retries; Chromium names the socket's URL in the message, not in the location.
    if (expectedDown && m.type() === 'error' && m.text().startsWith(`WebSocket connection to '${expectedDown.replace(/^http/, 'ws')}/`)) {
      return;
    }
    if (m.type() === 'warning' && !/Content Security Policy|integrity/i.test(m.text())) return;
    problems.push(`${page.url()}: console ${m.type()}: ${m.text()} at ${where}`);
  });
  page.on('pageerror', (e) => problems.push(`${page.url()}: page error: ${e.message}`));
}

const storageOf = (page, key) => page.evaluate((k) => localStorage.getItem(k), key);
const selectedName = async (page) => {
  const v = await storageOf(page, 'user-selected-proxy');
  return v ? JSON.parse(v).name : null;
};
const appHref = (page, slug) => page.getAttribute(`a[data-app="${slug}"]`, 'href');
const absolute = (href) => new URL(href, DASH).href;

const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
});
const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
context.on('page', watch);
let failed = false;
try {
  const page = await context.newPage();

  // ---- first-owner setup, sign-out, sign-in ----
  await page.goto(`${DASH}/`);
  check(new URL(page.url()).pathname === '/setup', `a new deployment opens the setup page, not ${page.url()}`);
  await page.waitForSelector('form#setup');
  await screenshot(page, 'setup');
  await page.fill('#username', 'admin');
  await page.fill('#email', 'admin@example.com');
  await page.fill('#password', PW);
  await Promise.all([page.waitForURL(`${DASH}/workspaces`), page.click('form#setup button[type=submit]')]);
  await page.waitForSelector('#workspaces');
  await page.waitForSelector('text=No workspaces yet');
  check((await page.textContent('#me')) === 'admin', 'the header names the new owner');
  ok('first-owner setup: /  -> /setup, the owner created and signed in, on to /workspaces (empty)');
  check((await selectedName(page)) === null, 'with the primary as the only region, nothing is auto-selected');
  ok('with only the primary listed, no choice is stored');

  await ask('provision');
  ok('provisioned (CLI login, proxies fast and slow, workspace ws with its agent, all regions ok)');

  await Promise.all([page.waitForURL(/\/login/), page.click('#signout')]);
  await page.waitForSelector('form[action="/login"]');
  await screenshot(page, 'login');
  const anon = await context.request.get(`${DASH}/api/v2/users/me`);
  check(anon.status() === 401, `signed out: /api/v2/users/me answers ${anon.status()}`);
  ok('sign-out: back at the sign-in page, the session gone');

  await page.goto(`${DASH}/account/workspace-proxy`);
  check(page.url().startsWith(`${DASH}/login?redirect=`), `signed out, a page sends to the sign-in page: ${page.url()}`);
  await page.fill('#email', 'admin@example.com');
  await page.fill('#password', 'wrong-password');
  expected401 = true;
  await page.click('form[action="/login"] button[type=submit]');
  await page.waitForSelector('[role=alert]');
  expected401 = false;
  check(/Incorrect/.test(await page.textContent('[role=alert]')), 'a wrong password is refused on the form');
  await page.fill('#password', PW);
  await Promise.all([page.waitForURL(`${DASH}/account/workspace-proxy`), page.click('form[action="/login"] button[type=submit]')]);
  const cookies = await context.cookies(DASH);
  const session = cookies.find((c) => c.name === 'coder_session_token');
  check(session && session.httpOnly && session.sameSite === 'Lax', `session cookie HttpOnly, SameSite=Lax: ${JSON.stringify(session)}`);
  ok('sign-in: a wrong password refused, then back to the page asked for; the cookie HttpOnly + SameSite=Lax');

  // ---- the picker: every region measured, the fast one auto-selected once ----
  await page.waitForSelector('#regions tbody tr[data-region="slow"]');
  const measured = await until(async () => {
    const v = JSON.parse((await storageOf(page, 'workspace-proxy-latencies')) || '{}');
    return Object.keys(v).length === 3 ? v : null;
  }, 'latencies of all three regions stored');
  for (const reports of Object.values(measured)) {
    check(Array.isArray(reports) && reports.length === 1, 'one report per region (the default max)');
    const r = reports[0];
    check(typeof r.latencyMS === 'number' && typeof r.accurate === 'boolean' && !isNaN(Date.parse(r.at)), `report shape: ${JSON.stringify(r)}`);
  }
  const sel = await until(() => selectedName(page), 'a region auto-selected on first load');
  const lat = {};
  for (const name of ['primary', 'fast', 'slow']) {
    const text = await page.textContent(`#regions td[data-latency-for="${name}"]`);
    const m = /(\d+) ms/.exec(text);
    check(m, `the account page shows the latency of ${name}: ${text}`);
    lat[name] = +m[1];
    check(!/approx/.test(text), `${name}'s latency is accurate (Timing-Allow-Origin): ${text}`);
  }
  check(lat.fast < lat.primary && lat.primary < lat.slow, `latencies fast < primary < slow: ${JSON.stringify(lat)}`);
  check(sel === 'fast', `the lowest-latency region is auto-selected: ${sel} (latencies ${JSON.stringify(lat)})`);
  check(await page.isVisible('#regions [data-selected="fast"]'), 'the account page marks fast as selected');
  await screenshot(page, 'account-workspace-proxy');
  ok(`picker: three regions measured (${JSON.stringify(lat)} ms, accurate), fast auto-selected and marked`);

  await page.click('#picker-menu summary');
  for (const name of ['primary', 'fast', 'slow']) {
    check(/\d+ ms/.test(await page.textContent(`#picker-menu [data-latency-for="${name}"]`)), `the header menu shows ${name}'s latency`);
  }
  check((await page.getAttribute('#picker-menu button[data-region="fast"]', 'aria-pressed')) === 'true', 'the header menu marks fast');
  await screenshot(page, 'picker-menu');
  await page.click('#picker-menu summary');
  ok('the header menu at the top right lists all three regions with latencies, fast marked');

  // ---- the workspaces page: the agent connected, links through fast ----
  await page.goto(`${DASH}/workspaces`);
  await page.waitForSelector('[data-agent-status="connected"]', { timeout: 15_000 });
  await until(async () => (await appHref(page, 'web')) === `${FAST}/@admin/ws.main/apps/web/`, 'the path app link goes through fast');
  check((await appHref(page, 'sub')) === `http://sub--main--ws--admin.fast.localhost:${new URL(FAST).port}/`, `subdomain app link through fast's wildcard: ${await appHref(page, 'sub')}`);
  check((await page.getAttribute('a[data-kind="terminal"]', 'href')) === '/@admin/ws.main/terminal', 'the terminal link');
  await page.click('details[data-ports-for="main"] summary');
  const portLinks = await page.$$eval('details[data-ports-for="main"] a[data-kind="port"]', (as) => as.map((a) => a.href));
  check(portLinks.length >= 1 && portLinks.every((h) => /^http:\/\/\d+--main--ws--admin\.fast\.localhost:\d+\/$/.test(h)), `port links through fast: ${portLinks}`);
  check(await page.isVisible('details[data-ports-for="main"] input[type=number]'), 'the free port field');
  await screenshot(page, 'workspaces');
  ok('workspaces: ws/main connected, path + subdomain app, terminal and port links through fast');

  // ---- localStorage garbage collection: reports of unlisted regions and reports older than 7 days ----
  const ghost = '00000000-0000-4000-8000-000000000000';
  const primaryId = await page.evaluate(async () =>
    (await (await fetch('/api/v2/regions')).json()).regions.find((r) => r.name === 'primary').id);
  await page.evaluate(({ ghost, primaryId }) => {
    const m = JSON.parse(localStorage.getItem('workspace-proxy-latencies'));
    m[ghost] = [{ accurate: true, latencyMS: 1, at: new Date().toISOString() }];
    m[primaryId] = [{ accurate: true, latencyMS: 1, at: new Date(Date.now() - 8 * 86400e3).toISOString() }];
    localStorage.setItem('workspace-proxy-latencies', JSON.stringify(m));
  }, { ghost, primaryId });
  await page.reload();
  const gc = await until(async () => {
    const m = JSON.parse((await storageOf(page, 'workspace-proxy-latencies')) || '{}');
    const p = m[primaryId] && m[primaryId][0];
    return !m[ghost] && p && Date.now() - Date.parse(p.at) < 60e3 ? m : null;
  }, 'an unlisted region\'s reports dropped and an 8-day-old report replaced by a new probe');
  check(Object.keys(gc).length === 3, `three regions left in the latency map: ${Object.keys(gc)}`);
  ok('latency map: an unlisted region dropped, a report older than 7 days dropped and measured again');

  // ---- kept across reloads, even when the latencies change ----
  await ask('fast-latency-400');
  await page.goto(`${DASH}/account/workspace-proxy`);
  await page.click('#refresh-latencies');
  await until(async () => {
    const m = /(\d+) ms/.exec(await page.textContent('#regions td[data-latency-for="fast"]'));
    return m && +m[1] > lat.slow;
  }, 'fast measured slower than slow after its relay delay grew');
  await page.reload();
  await sleep(1500);
  check((await selectedName(page)) === 'fast', 'fast stays selected after it became the slowest');
  check(await page.isVisible('#regions [data-selected="fast"]'), 'still marked selected');
  await ask('fast-latency-0');
  ok('the choice is kept across reloads although fast is now measured slowest (no flip-flop)');

  // ---- opening the app through the selected proxy ----
  await page.goto(`${DASH}/workspaces`);
  await until(async () => (await appHref(page, 'web')) === `${FAST}/@admin/ws.main/apps/web/`, 'the app link through fast');
  const [app] = await Promise.all([context.waitForEvent('page'), page.click('a[data-app="web"]')]);
  await app.waitForLoadState('load');
  await until(async () => /hello from admin's app/.test(await app.textContent('body')), 'the app page through fast', 20_000);
  check(new URL(app.url()).host === new URL(FAST).host, `the app is served under fast's host: ${app.url()}`);
  await screenshot(app, 'app-through-fast');
  await app.close();
  ok(`the app opens under fast's host (${new URL(FAST).host}) and shows its page`);

  // ---- a second tab follows a selection change ----
  const tab2 = await context.newPage();
  await tab2.goto(`${DASH}/workspaces`);
  await until(async () => (await appHref(tab2, 'web')) === `${FAST}/@admin/ws.main/apps/web/`, 'tab 2 starts with fast');
  await page.goto(`${DASH}/account/workspace-proxy`);
  await page.click('#regions button[data-select="slow"]');
  await until(async () => (await appHref(tab2, 'web')) === `${SLOW}/@admin/ws.main/apps/web/`, 'tab 2 follows the choice of slow', 5_000);
  check((await tab2.getAttribute('#picker-current', 'data-region')) === 'slow', 'tab 2 header shows slow');
  await screenshot(tab2, 'second-tab-follows');
  await tab2.click('#picker-menu summary');
  await tab2.click('#picker-menu button[data-region="fast"]');
  await until(async () => page.isVisible('#regions [data-selected="fast"]'), 'tab 1 follows the choice of fast made in tab 2', 5_000);
  await tab2.close();
  ok('a second tab follows a selection change (slow), and the first follows the second (back to fast)');

  // ---- the selected proxy dies: fallback within 10 s, the choice kept; back when it returns ----
  await page.goto(`${DASH}/workspaces`);
  await until(async () => (await appHref(page, 'web')) === `${FAST}/@admin/ws.main/apps/web/`, 'links through fast before the stop');
  expectedDown = FAST;
  const t0 = Date.now();
  await ask('stop-fast');
  await until(async () => (await appHref(page, 'web')) === '/@admin/ws.main/apps/web/', 'the app link falls back to the primary (relative)', 10_000, 100);
  const fellBack = Date.now() - t0;
  check((await selectedName(page)) === 'fast', 'the stored choice is still fast');
  check(await page.isVisible('details[data-ports-for="main"]'), 'the port menu is still there');
  await page.click('details[data-ports-for="main"] summary');
  const primaryPorts = await page.$$eval('details[data-ports-for="main"] a[data-kind="port"]', (as) => as.map((a) => a.href));
  check(primaryPorts.every((h) => h.includes('.primary.localhost:')), `port links through the primary's wildcard: ${primaryPorts}`);
  await page.click('#picker-menu summary');
  await page.waitForSelector('#picker-fallback');
  await screenshot(page, 'fallback-to-primary');
  await page.click('#picker-menu summary');
  await ask('resume-primary');
  ok(`fast killed while the primary was frozen: links fell back to the primary after ${fellBack} ms (limit 10000), choice kept, port menu kept`);

  await page.goto(`${DASH}/deployment/workspace-proxies`);
  await page.waitForSelector('#proxies tr[data-proxy="fast"] [data-health-error]', { timeout: 15_000 });
  const down = await page.textContent('#proxies tr[data-proxy="fast"] [data-status]');
  check(down === 'unreachable' || down === 'unhealthy', `the deployment page shows fast as down: ${down}`);
  await screenshot(page, 'deployment-fast-down');
  ok(`the deployment page shows fast ${down} with the health check's error`);

  await page.goto(`${DASH}/workspaces`);
  await until(async () => (await appHref(page, 'web')) === '/@admin/ws.main/apps/web/', 'after a reload while fast is down, the primary');
  await ask('start-fast');
  const t1 = Date.now();
  await until(async () => (await appHref(page, 'web')) === `${FAST}/@admin/ws.main/apps/web/`, 'links back through fast after its restart', 30_000);
  expectedDown = null;
  ok(`fast restarted: links back through fast after ${Date.now() - t1} ms`);

  // ---- an app opened through the selected proxy right after it died: the click checks the proxy, the page
  // falls back at once and the app opens under the primary; the proxy taken back when it answers again.
  // The click comes before the page's 2 s probe of the selected region could have noticed (most of the
  // time), so that without the check the tab would open under the dead proxy.
  const appText = async (p) => /hello from admin's app/.test(await p.textContent('body').catch(() => ''));
  for (const [how, stop, start] of [['hung (SIGSTOP)', 'hang-fast', 'resume-fast'], ['refusing (SIGKILL)', 'kill-fast', 'start-fast']]) {
    await until(async () => (await appHref(page, 'web')) === `${FAST}/@admin/ws.main/apps/web/`, `links through fast before it is ${how}`, 30_000);
    await sleep(1000); // the last probe of fast answered; the next one is due in about a second
    expectedDown = FAST;
    await ask(stop);
    const t = Date.now();
    const [tab] = await Promise.all([
      context.waitForEvent('page', { timeout: 10_000 }).catch(() => {
        throw new Fail(`no tab opened within 10 s of the click while fast is ${how}`);
      }),
      page.click('a[data-app="web"]'),
    ]);
    await until(async () => new URL(tab.url()).host === new URL(DASH).host && (await appText(tab)),
      `the app opens under the primary while fast is ${how} (now at ${tab.url()})`, 10_000, 100);
    const took = Date.now() - t;
    check((await appHref(page, 'web')) === '/@admin/ws.main/apps/web/', 'the app link now goes through the primary');
    const said = await page.textContent('#links-status');
    check(/^Fast Proxy is not answering; using the primary\.$/.test(said), `the status line says so: ${said}`);
    check((await page.getAttribute('#links-status', 'role')) === 'status', 'the status line is a live region');
    check((await selectedName(page)) === 'fast', 'the stored choice is still fast');
    if (stop === 'hang-fast') {
      await screenshot(page, 'app-click-fallback');
      await screenshot(tab, 'app-through-primary');
    }
    await tab.close();
    await ask(start);
    const t2 = Date.now();
    await until(async () => (await appHref(page, 'web')) === `${FAST}/@admin/ws.main/apps/web/`, `links back through fast after it was ${how}`, 30_000);
    check((await page.textContent('#links-status')) === '', 'the status line is empty again');
    expectedDown = null;
    ok(`app clicked while fast was ${how}: opened under the primary after ${took} ms (limit 10000), the status line said so; fast taken back ${Date.now() - t2} ms after it answered`);
  }

  // ---- deployment → workspace proxies ----
  await page.goto(`${DASH}/deployment/workspace-proxies`);
  await page.waitForSelector('#proxies tr[data-proxy="fast"] [data-status="ok"]', { timeout: 15_000 });
  check(await page.isVisible('#proxies tr[data-proxy="slow"] [data-status="ok"]'), 'slow listed as ok');
  check(await page.isVisible('#proxies tr[data-proxy="primary"]'), 'primary listed');
  await page.fill('#proxy-name', 'extra');
  await page.fill('#proxy-display-name', 'Extra Region');
  await page.click('#create-proxy button[type=submit]');
  await page.waitForSelector('#token-box #proxy-token');
  const token = await page.textContent('#proxy-token');
  check(/^[0-9a-f-]{36}:[A-Za-z0-9]+$/.test(token), `the new proxy's token is shown: ${token}`);
  await page.waitForSelector('#proxies tr[data-proxy="extra"] [data-status="unregistered"]');
  await screenshot(page, 'deployment-created');
  await page.click('#proxies tr[data-proxy="extra"] button:has-text("Regenerate token")');
  await until(async () => {
    const t = await page.textContent('#proxy-token');
    return t !== token && /:/.test(t);
  }, 'a regenerated token is shown');
  await page.click('#proxies tr[data-proxy="extra"] button:has-text("Edit")');
  await page.fill('#proxies input[aria-label="Display name"]', 'Extra Renamed');
  await page.click('#proxies button:has-text("Save")');
  await until(async () => /Extra Renamed/.test(await page.textContent('#proxies tr[data-proxy="extra"]')), 'the edit is saved');
  page.once('dialog', (d) => d.accept());
  await page.click('#proxies tr[data-proxy="extra"] button:has-text("Delete")');
  await until(async () => !(await page.$('#proxies tr[data-proxy="extra"]')), 'the deleted proxy leaves the list');
  await screenshot(page, 'deployment-workspace-proxies');
  ok('deployment: fast, slow, primary ok; extra created (token shown once), token regenerated, edited, deleted');

  // ---- the terminal: through fast (signed token), then the same session through the primary ----
  const rowsText = (p) => p.$$eval('.xterm-rows > div', (rows) => rows.map((r) => r.textContent.trimEnd()));
  const termShows = async (p, line) => (await rowsText(p)).some((r) => r === line);
  await page.goto(`${DASH}/workspaces`);
  await Promise.all([page.waitForURL(`${DASH}/@admin/ws.main/terminal`), page.click('a[data-kind="terminal"]')]);
  await page.waitForSelector('#terminal-status[data-state="connected"][data-region="fast"]', { timeout: 20_000 });
  await page.click('#terminal');
  await page.keyboard.type('echo hi\n');
  await until(() => termShows(page, 'hi'), 'the terminal through fast shows "hi" after echo hi', 15_000);
  await screenshot(page, 'terminal-through-fast');
  ok('terminal through fast (signed token on the proxy): `echo hi` shows hi');

  await page.reload();
  await page.waitForSelector('#terminal-status[data-state="connected"][data-region="fast"]', { timeout: 20_000 });
  await until(() => termShows(page, 'hi'), 'after a reload the same session (its scrollback) is back', 15_000);
  await page.click('#picker-menu summary');
  await page.click('#picker-menu button[data-region="primary"]');
  await page.waitForSelector('#terminal-status[data-state="connected"][data-region="primary"]', { timeout: 20_000 });
  await page.click('#terminal');
  await page.keyboard.type('echo "there $((6 * 7))"\n');
  await until(() => termShows(page, 'there 42'), 'the terminal through the primary runs the next command', 15_000);
  check(await termShows(page, 'hi'), 'the same session: the earlier output is still there');
  const his = (await rowsText(page)).filter((r) => r === 'hi').length;
  check(his === 1, `the replayed scrollback is not shown twice (${his} lines "hi")`);
  await screenshot(page, 'terminal-through-primary');
  ok('terminal: a reload reattaches the same session; switching to the primary reattaches it through the primary (session cookie)');

  // ---- ?command= runs a command instead of the login shell, through fast (inside the signed-token URL) ----
  await page.click('#picker-menu summary');
  await page.click('#picker-menu button[data-region="fast"]');
  await page.waitForSelector('#terminal-status[data-state="connected"][data-region="fast"]', { timeout: 20_000 });
  await page.goto(`${DASH}/@admin/ws.main/terminal?command=${encodeURIComponent('echo "cmd $((40 + 2))"')}`);
  await page.waitForSelector('#terminal-status[data-state="exited"]', { timeout: 20_000 });
  await until(() => termShows(page, 'cmd 42'), 'the command\'s output', 10_000);
  check(!(await termShows(page, 'hi')), 'the command has a session of its own (not the shell with "hi")');
  const ended = await page.textContent('#terminal-status');
  check(/The command ended \(process exited with code 0\)/.test(ended), `the page says the command ended: ${ended}`);
  await screenshot(page, 'terminal-command');
  ok('terminal ?command=: runs through fast instead of the login shell, its own session, "ended" when it exits');

  // ---- the terminal's proxy dies: the same session through the primary within 10 s, back when it returns ----
  await page.goto(`${DASH}/@admin/ws.main/terminal`);
  await page.waitForSelector('#terminal-status[data-state="connected"][data-region="fast"]', { timeout: 20_000 });
  await until(() => termShows(page, 'hi'), 'the shell session through fast again', 10_000);
  expectedDown = FAST;
  await ask('kill-fast');
  const t4 = Date.now();
  await page.waitForSelector('#terminal-status[data-state="connected"][data-region="primary"]', { timeout: 10_000 });
  const termFell = Date.now() - t4;
  check(await termShows(page, 'hi'), 'the same session through the primary');
  await ask('start-fast');
  await page.waitForSelector('#terminal-status[data-state="connected"][data-region="fast"]', { timeout: 30_000 });
  expectedDown = null;
  ok(`terminal: fast killed, the session reattached through the primary after ${termFell} ms (limit 10000), back through fast after its restart`);

  // ---- a proxy registered after the pages loaded: a dashboard page reloads itself for a CSP that names it
  // and measures it; the terminal page does not reload (a notice says to) ----
  await page.goto(`${DASH}/@admin/ws.main/terminal`);
  await page.waitForSelector('#terminal-status[data-state="connected"][data-region="fast"]', { timeout: 20_000 });
  const tab3 = await context.newPage();
  await tab3.goto(`${DASH}/account/workspace-proxy`);
  await tab3.waitForSelector('#regions tbody tr[data-region="slow"]');
  await tab3.evaluate(() => {
    window.loadedBeforeThird = true;
  });
  await page.evaluate(() => {
    window.loadedBeforeThird = true;
  });
  await ask('start-third');
  const t3 = Date.now();
  await until(async () => /\d+ ms/.test(await tab3.textContent('#regions td[data-latency-for="third"]').catch(() => '')),
    'the proxy registered after the page loaded is listed with a latency', 15_000);
  const third = await tab3.textContent('#regions td[data-latency-for="third"]');
  check(!(await tab3.evaluate(() => window.loadedBeforeThird)), 'the account page reloaded itself');
  await screenshot(tab3, 'account-third-proxy');
  await tab3.close();
  await page.waitForSelector('#reload-notice', { timeout: 15_000 });
  check(await page.evaluate(() => window.loadedBeforeThird === true), 'the terminal page did not reload');
  check(await page.isVisible('#terminal-status[data-state="connected"]'), 'the terminal is still connected');
  await screenshot(page, 'terminal-reload-notice');
  ok(`a proxy registered after the pages loaded: measured (${third}) ${Date.now() - t3} ms after it was ok, the account page reloaded itself; the terminal page kept its session and shows a notice`);

  check(a11y.length === 0, `accessibility (axe-core, serious and critical):\n${a11y.join('\n')}`);
  ok(`axe-core: no serious or critical accessibility violation on the ${a11yPages} dashboard pages screenshot`);
  check(problems.length === 0, `console errors:\n${problems.join('\n')}`);
  ok('no console errors or page errors on any dashboard page (failed probes of the stopped proxy excepted)');
} catch (e) {
  failed = true;
  console.log(`FAIL ${e instanceof Fail ? '' : '(exception) '}${e.stack || e}`);
  for (const p of context.pages()) await screenshot(p, 'failure').catch(() => {});
  for (const p of context.pages()) {
    const l = await p.evaluate(() => localStorage.getItem('workspace-proxy-latencies')).catch((e) => String(e));
    console.log(`latencies seen by ${p.url()} at ${new Date().toISOString()}: ${l}`);
  }
  if (problems.length) console.log(`console problems:\n${problems.join('\n')}`);
} finally {
  await browser.close();
}
process.exit(failed ? 1 : 0);
