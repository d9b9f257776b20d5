#!/usr/bin/env node
// The operator console (docs/console.md, SPEC section 11) in a real browser: headless Chromium
// (Debian's /usr/bin/chromium) or Firefox (Debian's /usr/bin/firefox-esr, over WebDriver BiDi),
// driven by puppeteer-core pinned in package-lock.json, against the real allocation-api and
// allocation-dispatcherd on a config of its own.
//
//   node tests/browser/console_test.mjs <allocation-api> <allocation-dispatcherd> <work dir> [chromium|firefox]
//
// Three webhook receivers in this process (127.0.0.1, port 0): warehouse 1 answers 500 until it
// is "fixed" (its delivery dies after the [100ms, 100ms] schedule), warehouse 2 answers 410 Gone
// (its webhook is disabled) until it is fixed, warehouse 3 answers 200. The browser then signs
// in (a wrong key, a key without `console`, the operator key), reads the overview and its charts,
// opens an allocation by order number, re-sends the dead delivery from the deliveries page,
// enables warehouse 2's webhook from the overview, signs out, signs in with a read-only key
// scoped to warehouse 1, and is sent back to sign-in when that key is removed (SIGHUP).
// The browser must log no error or warning (CSP violations included), apart from the
// "Failed to load resource" lines Chromium itself prints for the 401/403/404 answers the test
// provokes on purpose (Firefox prints none), and must load nothing from anywhere but the API.
// Screenshots (1280x800) go to <work dir>/screenshots/. Exits 1 with a message on any failure.
import {spawn} from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import process from 'node:process';

const [apiArg, dispatcherArg, workArg, browserArg = 'chromium'] = process.argv.slice(2);
const browserPaths = {
  chromium: process.env.CHROMIUM_PATH || '/usr/bin/chromium',
  firefox: process.env.FIREFOX_PATH || '/usr/bin/firefox-esr',
};
if (!apiArg || !dispatcherArg || !workArg || !(browserArg in browserPaths)) {
  console.error('usage: console_test.mjs <allocation-api> <allocation-dispatcherd> <work dir> [chromium|firefox]');
  process.exit(2);
}
const apiBinary = path.resolve(apiArg);
const dispatcherBinary = path.resolve(dispatcherArg);
const work = path.resolve(workArg);
const shots = path.join(work, 'screenshots');
const started = Date.now();
const TOTAL_LIMIT_MS = 90_000;

let puppeteer;
try {
  ({default: puppeteer} = await import('puppeteer-core'));
} catch (e) {
  console.error('FAIL: puppeteer-core is not installed; run ' +
                '`npm ci --prefix tests/browser --no-audit --no-fund` (tests/run.sh does)');
  process.exit(1);
}

// ---- bookkeeping --------------------------------------------------------------------------

const children = [];     // {name, proc, err}
const servers = [];
let browser = null;
let page = null;

function log(text) {
  console.log(`[${((Date.now() - started) / 1000).toFixed(1)}s] ${text}`);
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

class Failure extends Error {}

function check(condition, message) {
  if (!condition) throw new Failure(message);
}

// Polls `probe` (sync or async; a truthy answer ends the wait) every `every` ms.
async function waitUntil(what, probe, timeoutMs = 10_000, every = 100) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      last = await probe();
      if (last) return last;
    } catch (e) {
      if (e instanceof Failure) throw e;  // no point in waiting longer
      last = e;
    }
    if (Date.now() > deadline) {
      const detail = last instanceof Error ? `: ${last.message}` : '';
      throw new Failure(`timed out after ${timeoutMs} ms waiting for ${what}${detail}`);
    }
    await sleep(every);
  }
}

// ---- the services -------------------------------------------------------------------------

function sha256(text) {
  return crypto.createHash('sha256').update(text).digest('hex');
}

const tokens = {
  ops: 'console-test-ops-token',           // console, console actions, POST/GET /allocations
  staff: 'console-test-staff-token',       // console only, warehouse 1 only
  oms: 'console-test-oms-token',           // no console
};

function startReceiver(name, answer) {
  const receiver = {name, calls: [], answer, port: 0};
  const server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      const [status, body] = receiver.answer();
      receiver.calls.push(status);
      res.writeHead(status, {'Content-Type': 'text/plain', 'X-Receiver': name});
      res.end(body);
    });
  });
  servers.push(server);
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      receiver.port = server.address().port;
      resolve(receiver);
    });
  });
}

function configYaml(receivers, {withStaff = true} = {}) {
  const key = (name, token, endpoints, scope = '') =>
    `    - {name: ${name}, sha256: ${sha256(token)}, endpoints: [${endpoints}]${scope}}\n`;
  const hook = (r) => `webhook: {url: "http://127.0.0.1:${r.port}/hook", secret: secret-${r.port}}`;
  return 'timezone: Europe/Stockholm\n' +
         'log_level: info\n' +
         'store: {path: relay.db, synchronous: normal}\n' +
         'api:\n' +
         '  listen: 127.0.0.1:0\n' +
         '  threads: 4\n' +
         '  keys:\n' +
         key('ops', tokens.ops, 'console, console actions, POST /allocations, GET /allocations') +
         (withStaff ? key('staff-alpha', tokens.staff, 'console', ', warehouses: [1]') : '') +
         key('oms', tokens.oms, 'POST /allocations, GET /allocations') +
         'dispatcher:\n' +
         '  listen: 127.0.0.1:0\n' +
         '  retry_schedule: [100ms, 100ms]\n' +
         '  allow_private_networks: true\n' +
         'warehouses:\n' +
         `  - {id: 1, name: Alpha Hub, confirm_timeout: 1h, ${hook(receivers.a)}}\n` +
         `  - {id: 2, name: Bravo Store, confirm_timeout: 1h, ${hook(receivers.b)}}\n` +
         `  - {id: 3, name: Charlie DC, confirm_timeout: 1h, ${hook(receivers.c)}}\n` +
         'rules:\n' +
         '  everywhere: [[1, 2, 3]]\n' +
         '  charlie: [[3]]\n';
}

function startProcess(name, args, readyPattern) {
  const proc = spawn(args[0], args.slice(1), {cwd: work, stdio: ['ignore', 'ignore', 'pipe']});
  const child = {name, proc, err: '', exit: null};
  proc.stderr.setEncoding('utf8');
  proc.stderr.on('data', (chunk) => { child.err += chunk; });
  proc.on('exit', (code, signal) => { child.exit = {code, signal}; });
  proc.on('error', (e) => { child.exit = {error: e.message}; });
  children.push(child);
  return waitUntil(`${name} to start (${readyPattern})`, () => {
    if (child.exit) throw new Failure(`${name} exited (${JSON.stringify(child.exit)}): ${child.err}`);
    return readyPattern.test(child.err) ? child : null;
  }, 15_000, 50);
}

async function stopProcess(child) {
  if (child.exit) return child.exit;
  child.proc.kill('SIGTERM');
  await waitUntil(`${child.name} to stop after SIGTERM`, () => child.exit, 15_000, 50);
  return child.exit;
}

let apiBase = '';

async function apiCall(method, pathname, token, body) {
  const response = await fetch(apiBase + pathname, {
    method,
    headers: {'API-Authorization': token, ...(body ? {'Content-Type': 'application/json'} : {})},
    body: body ? JSON.stringify(body) : undefined,
    signal: AbortSignal.timeout(5000),
  });
  const text = await response.text();
  let json = null;
  try {
    json = JSON.parse(text);
  } catch (e) {
    json = null;
  }
  return {status: response.status, json, text, headers: response.headers};
}

async function createAllocation(number, rule) {
  const a = await apiCall('POST', '/allocations', tokens.ops, {
    order: {id: '486e13eaaa65d5ff1e87c997b5dce54e', number},
    lines: [{lineId: 73, quantity: 5, stockItemId: 1}],
    rule,
  });
  check(a.status === 200 && a.json && a.json.status === 'ok',
        `POST /allocations (order ${number}) answered ${a.status} ${a.text}`);
}

// ---- the browser --------------------------------------------------------------------------

const consoleProblems = [];    // errors/warnings the page logged that were not expected
const expectedNetwork = [];    // the 4xx the test provokes: {status, path} while allowed
const foreignRequests = [];
let allowed = [];              // [{status, path}] allowed in the current step

function allow(...entries) {
  allowed = entries;
}

function onConsole(message) {
  const type = message.type();
  if (type !== 'error' && type !== 'warn' && type !== 'warning' && type !== 'assert') return;
  const text = message.text();
  const url = message.location()?.url || '';
  const network = /^Failed to load resource: the server responded with a status of (\d+)/.exec(text);
  if (network) {
    const status = Number(network[1]);
    const pathname = url ? new URL(url).pathname : '';
    if (allowed.some((a) => a.status === status && pathname.startsWith(a.path))) {
      expectedNetwork.push(`${status} ${pathname}`);
      return;
    }
  }
  consoleProblems.push(`console.${type}: ${text}${url ? ` (${url})` : ''}`);
}

// `calm`: the focus ring and the search box's text are left out of the picture.
async function screenshot(name, {calm = true} = {}) {
  if (calm) {
    await page.evaluate(() => {
      if (document.activeElement && document.activeElement !== document.body) document.activeElement.blur();
      const search = document.getElementById('order-search-input');
      if (search) search.value = '';
    });
  }
  const file = path.join(shots, `${name}.png`);
  await page.screenshot({path: file});
  return file;
}

async function text(selector) {
  return page.$eval(selector, (e) => e.textContent);
}

async function noticeShows(pattern, timeout = 10_000) {
  await page.waitForFunction((source) => {
    const box = document.getElementById('notice');
    return box.dataset.kind !== '' && box.getBoundingClientRect().height > 0 &&
           new RegExp(source).test(document.getElementById('notice-text').textContent);
  }, {timeout}, pattern.source);
  return text('#notice-text');
}

async function signIn(token) {
  await page.waitForSelector('#signin-key', {visible: true, timeout: 5000});
  await page.$eval('#signin-key', (e) => { e.value = ''; });
  await page.type('#signin-key', token);
  await page.click('#signin-submit');
}

// Opens the confirmation dialog with `button`, checks it (focus on Confirm), then either
// presses Escape (cancel) or confirms with `how` ('click' or 'enter').
async function confirmWith(buttonSelector, how) {
  await page.click(buttonSelector);
  await page.waitForSelector('#confirm-dialog[open]', {timeout: 5000});
  const focused = await page.evaluate(() => document.activeElement && document.activeElement.id);
  check(focused === 'confirm-ok', `the dialog's Confirm button has not the focus (${focused})`);
  if (how === 'escape') await page.keyboard.press('Escape');
  else if (how === 'enter') await page.keyboard.press('Enter');
  else await page.click('#confirm-ok');
  await page.waitForSelector('#confirm-dialog:not([open])', {timeout: 5000});
}

function launchBrowser() {
  const common = {executablePath: browserPaths[browserArg], headless: true, timeout: 30_000,
                  defaultViewport: {width: 1280, height: 800}};
  if (browserArg === 'firefox') {
    // A profile of puppeteer's own in a temp dir; nothing is fetched (no updates, no telemetry).
    return puppeteer.launch({...common, browser: 'firefox', extraPrefsFirefox: {
      'intl.accept_languages': 'en-US', 'intl.locale.requested': 'en-US',
      'app.update.enabled': false, 'network.captive-portal-service.enabled': false,
      'network.connectivity-service.enabled': false, 'browser.safebrowsing.update.enabled': false,
    }});
  }
  const args = ['--disable-dev-shm-usage', '--no-first-run', '--no-default-browser-check',
                '--disable-extensions', '--disable-background-networking', '--lang=en-US'];
  if (process.getuid && process.getuid() === 0) args.push('--no-sandbox');
  return puppeteer.launch({...common, args});
}

// ---- the test -----------------------------------------------------------------------------

async function run() {
  fs.rmSync(work, {recursive: true, force: true});
  fs.mkdirSync(shots, {recursive: true});

  const receivers = {
    // Its 500 carries markup: the page must show it as text (checked on the allocation page).
    a: await startReceiver('alpha', () => (receivers.a.fixed ? [200, 'ok']
                                           : [500, '<img src=x onerror="window.__injected=1">alpha is down\n'])),
    b: await startReceiver('bravo', () => (receivers.b.fixed ? [200, 'ok'] : [410, 'gone\n'])),
    c: await startReceiver('charlie', () => [200, 'ok']),
  };
  const configPath = path.join(work, 'relay.yaml');
  fs.writeFileSync(configPath, configYaml(receivers));

  const api = await startProcess('allocation-api', [apiBinary, '--config', configPath], /api ready/);
  const port = /api listening on 127\.0\.0\.1:(\d+)/.exec(api.err)?.[1];
  check(port, `no "api listening on" line: ${api.err}`);
  apiBase = `http://127.0.0.1:${port}`;
  const dispatcher = await startProcess('allocation-dispatcherd',
                                        [dispatcherBinary, '--config', configPath], /dispatcher ready/);
  await waitUntil('GET /health', async () => (await apiCall('GET', '/health', '')).status === 200, 10_000);
  log(`allocation-api on ${apiBase}, dispatcher up; receivers on ${receivers.a.port}, ` +
      `${receivers.b.port}, ${receivers.c.port}`);

  // The console's own checks, without a browser: headers and key answers.
  const pageAnswer = await fetch(`${apiBase}/console/`, {signal: AbortSignal.timeout(5000)});
  const csp = pageAnswer.headers.get('content-security-policy') || '';
  check(pageAnswer.status === 200 && /script-src 'self'/.test(csp) && !/unsafe/.test(csp),
        `GET /console/: ${pageAnswer.status}, CSP "${csp}"`);
  const redirect = await fetch(`${apiBase}/console`, {redirect: 'manual', signal: AbortSignal.timeout(5000)});
  check(redirect.status === 301 && /\/console\/$/.test(redirect.headers.get('location') || ''),
        `GET /console: ${redirect.status} Location ${redirect.headers.get('location')}`);
  check((await apiCall('GET', '/console/api/overview', 'no-such-token')).status === 401,
        'an unknown key is not 401');
  check((await apiCall('GET', '/console/api/overview', tokens.oms)).status === 403,
        'a key without console is not 403');

  await createAllocation(1001, 'everywhere');
  await createAllocation(1002, 'charlie');
  await createAllocation(1003, 'charlie');
  const seeded = await waitUntil('warehouse 1 to have a dead delivery and warehouse 2 its webhook ' +
                                 'disabled (GET /console/api/overview)', async () => {
    const o = await apiCall('GET', '/console/api/overview', tokens.ops);
    if (o.status !== 200) throw new Failure(`overview answered ${o.status}: ${o.text}`);
    const w = Object.fromEntries(o.json.warehouses.map((x) => [x.id, x]));
    return w[1]?.deadDeliveries >= 1 && w[2]?.webhook === 'disabled' ? o.json : null;
  }, 15_000, 100);
  log(`seeded: warehouse 1 has ${seeded.warehouses[0].deadDeliveries} dead delivery, ` +
      `warehouse 2's webhook is disabled (${seeded.warehouses[1].disabledReason})`);
  const story = await apiCall('GET', '/console/api/allocations/1001', tokens.ops);
  check(story.status === 200, `GET /console/api/allocations/1001: ${story.status} ${story.text}`);
  const dead = story.json.deliveries.find((d) => d.warehouseId === 1 && d.state === 'dead');
  check(dead, `order 1001 has no dead delivery to warehouse 1: ${story.text}`);
  check(dead.attempts.length === 3 && dead.attempts.every((a) => a.httpStatus === 500),
        `the dead delivery should have 3 attempts answered 500: ${JSON.stringify(dead.attempts)}`);

  // ---- the browser ----
  browser = await launchBrowser();
  log(`browser: ${await browser.version()}`);
  page = await browser.newPage();
  page.setDefaultTimeout(10_000);
  page.on('console', onConsole);
  page.on('pageerror', (e) => consoleProblems.push(`pageerror: ${e.message}`));
  page.on('request', (r) => {
    if (!r.url().startsWith(`${apiBase}/`) && !r.url().startsWith('data:')) foreignRequests.push(r.url());
  });
  page.on('requestfailed', (r) => consoleProblems.push(`request failed: ${r.url()} ${r.failure()?.errorText}`));
  // CSP violations reach the console already; this names them even if Chromium's wording changes.
  await page.evaluateOnNewDocument(() => {
    document.addEventListener('securitypolicyviolation', (e) => {
      console.error(`CSP violation: ${e.violatedDirective} blocked ${e.blockedURI || 'inline'}`);
    });
  });

  log('sign-in: a wrong key, then a key without console');
  await page.goto(`${apiBase}/console`, {waitUntil: 'load', timeout: 10_000});
  check(page.url() === `${apiBase}/console/`, `/console did not end at /console/: ${page.url()}`);
  allow({status: 401, path: '/console/api/session'});
  await signIn('not-a-known-key');
  await page.waitForFunction(() => /That key is not known/.test(
    document.getElementById('signin-message').textContent), {timeout: 5000});
  check(await page.$eval('#app-view', (e) => e.hidden), 'the app is shown after a wrong key');
  allow({status: 403, path: '/console/api/session'});
  await signIn(tokens.oms);
  await page.waitForFunction(() => /not allowed to use the console/.test(
    document.getElementById('signin-message').textContent), {timeout: 5000});
  check(await page.evaluate(() => sessionStorage.length === 0), 'a refused key was stored');
  const signinShot = await screenshot('sign-in', {calm: false});
  allow();

  log('overview with the operator key');
  await signIn(tokens.ops);
  await page.waitForSelector('#overview-table [data-testid="warehouse-row-3"]', {timeout: 5000});
  check(await page.evaluate(() => sessionStorage.length === 1), 'the key is not in sessionStorage');
  const names = await page.$$eval('#overview-table tbody tr .wh-name', (l) => l.map((e) => e.textContent));
  check(JSON.stringify(names) === JSON.stringify(['Alpha Hub', 'Bravo Store', 'Charlie DC']),
        `overview warehouses: ${JSON.stringify(names)}`);
  check(/^[1-9]/.test(await text('[data-testid="dead-deliveries-1"]')), 'warehouse 1 shows no dead delivery');
  check(await page.$('[data-testid="resend-dead-1"]'), 'no "Re-send dead" button for warehouse 1');
  check(!(await page.$('[data-testid="resend-dead-3"]')), 'a "Re-send dead" button for warehouse 3 (none dead)');
  check(await page.$('[data-testid="enable-webhook-2"]'), 'no "Enable webhook" button for warehouse 2');
  check(await page.$eval('[data-testid="webhook-2"]', (e) => e.dataset.webhook) === 'disabled',
        'warehouse 2 is not shown disabled');
  check(/410/.test(await text('[data-testid="webhook-2"]')), 'warehouse 2 shows no disabled reason');
  check(await page.$eval('[data-testid="webhook-3"]', (e) => e.dataset.webhook) === 'enabled',
        'warehouse 3 is not shown enabled');
  await page.waitForFunction(() => {
    const ids = ['chart-delivered', 'chart-failures'];
    return ids.every((id) => {
      const chart = window.Chart && window.Chart.getChart(id);
      const canvas = document.getElementById(id);
      return chart && canvas.width > 0 && canvas.height > 0 && chart.data.labels.length === 180;
    });
  }, {timeout: 5000});
  const delivered = await page.evaluate(() =>
    window.Chart.getChart('chart-delivered').data.datasets[0].data.reduce((a, b) => a + b, 0));
  check(delivered >= 2, `the delivered chart counts ${delivered} (warehouse 3 had at least 2)`);
  const overviewShot = await screenshot('overview');

  // The overview refreshes by itself and keeps its chart objects.
  await page.evaluate(() => {
    window.__chartBefore = window.Chart.getChart('chart-delivered');
    window.__asOfBefore = document.getElementById('overview-asof').textContent;
  });
  await page.waitForFunction(() => document.getElementById('overview-asof').textContent !== window.__asOfBefore,
                             {timeout: 8000});
  check(await page.evaluate(() => window.Chart.getChart('chart-delivered') === window.__chartBefore),
        'the refresh rebuilt the chart instead of updating it');
  log('overview refreshed by itself (chart objects kept)');

  log('allocation page through the order search');
  await page.click('#order-search-input');
  await page.type('#order-search-input', '1001');
  await page.keyboard.press('Enter');
  await page.waitForSelector('#requests-table', {timeout: 5000});
  check(await page.evaluate(() => location.hash) === '#/allocation/1001', 'the search did not route');
  const requestRows = await page.$$eval('#requests-table tbody tr', (l) => l.length);
  check(requestRows === 3, `order 1001 shows ${requestRows} requests, not 3`);
  check(/Group 1/.test(await text('#allocation-groups [data-current="true"]')), 'group 1 is not marked current');
  const deadRow = `[data-testid="allocation-delivery-${dead.id}"]`;
  check(await page.$eval(deadRow, (e) => e.dataset.state) === 'dead', 'the dead delivery is not shown dead');
  check(await page.$(`${deadRow} [data-testid="resend-delivery-${dead.id}"]`), 'no Re-send on the dead delivery');
  const attempts = await page.$$eval(`#timeline li[data-kind="attempt"]`, (l) => l.map((e) => e.textContent));
  const deadAttempts = attempts.filter((t) => t.includes(`Delivery ${dead.id}, attempt`));
  check(deadAttempts.length === 3 && deadAttempts.every((t) => t.includes('HTTP 500')),
        `the timeline's attempts of delivery ${dead.id}: ${JSON.stringify(deadAttempts)}`);
  const heads = await page.$$eval('#timeline li[data-kind="attempt"] pre', (l) => l.map((e) => e.textContent));
  check(heads.length >= 3 && heads.every((h) => h.length > 0), `the response heads are not shown: ${JSON.stringify(heads)}`);
  check(heads.some((h) => h.startsWith('<img src=x onerror=')), `the markup answered is not shown as text: ${JSON.stringify(heads)}`);
  check(await page.evaluate(() => window.__injected === undefined && document.querySelectorAll('main img').length === 0),
        'a response head was put into the page as HTML');
  const times = await page.$$eval('#timeline li time', (l) => l.map((e) => e.dateTime));
  check(times.every((t, i) => i === 0 || Date.parse(times[i - 1]) <= Date.parse(t)), 'the timeline is not sorted');
  check(await page.$eval('#timeline time', (e) => e.title === e.dateTime && e.textContent !== e.dateTime),
        'times are not local with the ISO value in the title');
  const allocationShot = await screenshot('allocation');

  log('an unknown order');
  allow({status: 404, path: '/console/api/allocations/'});
  await page.$eval('#order-search-input', (e) => { e.value = ''; });
  await page.type('#order-search-input', '999999');
  await page.keyboard.press('Enter');
  await page.waitForSelector('#allocation-missing', {timeout: 5000});
  check(/No allocation for order 999999/.test(await text('#allocation-missing')), 'no "No allocation" message');
  allow();

  log('re-send the dead delivery from the deliveries page');
  receivers.a.fixed = true;
  await page.click('#nav-deliveries');
  await page.waitForSelector('#filter-state', {timeout: 5000});
  await page.select('#filter-state', 'dead');
  await page.waitForFunction(() => location.hash.includes('state=dead'), {timeout: 5000});
  await page.waitForSelector('#filter-warehouse', {timeout: 5000});
  await page.select('#filter-warehouse', '1');
  await page.waitForFunction(() => location.hash.includes('warehouse=1') &&
                             document.getElementById('view').dataset.loaded === 'deliveries' &&
                             document.getElementById('filter-warehouse')?.value === '1', {timeout: 5000});
  const row = `[data-testid="delivery-row-${dead.id}"]`;
  await page.waitForSelector(row, {timeout: 5000});
  check(await page.$eval(row, (e) => e.dataset.state) === 'dead', 'the row is not dead');
  check(/HTTP 500/.test(await text(row)), 'the last attempt (HTTP 500) is not shown');
  const deliveriesShot = await screenshot('deliveries');
  const resend = `[data-testid="resend-delivery-${dead.id}"]`;
  await confirmWith(resend, 'escape');
  check(await page.$eval(row, (e) => e.dataset.state) === 'dead', 'Escape re-sent the delivery anyway');
  await confirmWith(resend, 'click');
  const outcome = await noticeShows(/Re-sent/);
  check(/Re-sent (dead delivery|1 dead delivery)/.test(outcome), `the notice says "${outcome}"`);
  log(`notice: ${outcome}`);
  await page.select('#filter-state', '');
  await page.waitForFunction(() => !location.hash.includes('state=') &&
                             document.getElementById('filter-state')?.value === '', {timeout: 5000});
  await waitUntil(`delivery ${dead.id} to be shown succeeded`, async () => {
    await page.click('#deliveries-refresh');
    await sleep(250);
    return (await page.$eval(row, (e) => e.dataset.state).catch(() => null)) === 'succeeded';
  }, 10_000, 250);
  check(receivers.a.calls.at(-1) === 200, 'warehouse 1 was not called again');
  log(`delivery ${dead.id} succeeded`);

  log('enable warehouse 2\'s webhook from the overview');
  receivers.b.fixed = true;
  await page.click('#nav-overview');
  await page.waitForSelector('[data-testid="enable-webhook-2"]', {timeout: 5000});
  await confirmWith('[data-testid="enable-webhook-2"]', 'enter');
  const enabled = await noticeShows(/webhook/);
  check(/Enabled the webhook of Bravo Store/.test(enabled), `the notice says "${enabled}"`);
  await page.waitForSelector('[data-testid="webhook-2"][data-webhook="enabled"]', {timeout: 8000});
  check(!(await page.$('[data-testid="enable-webhook-2"]')), 'the Enable button stays after enabling');
  await waitUntil('warehouse 2\'s pending delivery to go out', async () => {
    const o = await apiCall('GET', '/console/api/overview', tokens.ops);
    const w = o.json.warehouses.find((x) => x.id === 2);
    return w.webhook === 'enabled' && w.pendingDeliveries === 0 && receivers.b.calls.at(-1) === 200;
  }, 10_000, 200);
  log('warehouse 2 enabled and delivered');

  log('sign out');
  await page.click('#sign-out');
  await page.waitForSelector('#signin-key', {visible: true, timeout: 5000});
  check(await page.evaluate(() => sessionStorage.length === 0), 'sign out kept the key');
  check(await page.$eval('#app-view', (e) => e.hidden), 'the app is still shown after sign out');

  log('a read-only key scoped to warehouse 1');
  await signIn(tokens.staff);
  await page.waitForSelector('#overview-table [data-testid="warehouse-row-1"]', {timeout: 5000});
  const scopedRows = await page.$$eval('#overview-table tbody tr', (l) => l.map((e) => e.dataset.warehouseId));
  check(JSON.stringify(scopedRows) === '["1"]', `the scoped key sees warehouses ${JSON.stringify(scopedRows)}`);
  check((await page.$$('#view button.danger, [data-testid^="enable-webhook"]')).length === 0,
        'a read-only key is offered actions');
  check(/read only/.test(await text('#session-who')), 'the session does not say read only');

  log('the key is removed from the config (SIGHUP): back to sign-in');
  fs.writeFileSync(configPath, configYaml(receivers, {withStaff: false}));
  api.proc.kill('SIGHUP');
  await waitUntil('the reload to drop the staff key', async () =>
    (await apiCall('GET', '/console/api/session', tokens.staff)).status === 401, 5000, 100);
  allow({status: 401, path: '/console/api/overview'});
  await page.waitForSelector('#signin-key', {visible: true, timeout: 8000});
  check(/no longer knows this key/.test(await text('#signin-message')), 'no message after the 401');
  check(await page.evaluate(() => sessionStorage.length === 0), 'the removed key is still stored');
  allow();

  await page.close();
  await browser.close();
  browser = null;

  check(consoleProblems.length === 0,
        `the browser logged errors or warnings:\n  ${consoleProblems.join('\n  ')}`);
  check(foreignRequests.length === 0, `the page loaded from elsewhere: ${foreignRequests.join(', ')}`);

  const apiExit = await stopProcess(api);
  const dispatcherExit = await stopProcess(dispatcher);
  check(apiExit.code === 0, `allocation-api exited ${JSON.stringify(apiExit)}`);
  check(dispatcherExit.code === 0, `allocation-dispatcherd exited ${JSON.stringify(dispatcherExit)}`);
  check(/console: key ops /.test(api.err), 'the actions are not logged with the key name');

  log(`expected 4xx the browser reported: ${expectedNetwork.join(', ') || 'none'}`);
  console.log('screenshots:');
  for (const file of [signinShot, overviewShot, allocationShot, deliveriesShot]) console.log(`  ${file}`);
}

async function cleanUp() {
  if (browser) await browser.close().catch(() => {});
  for (const child of children) if (!child.exit) child.proc.kill('SIGKILL');
  for (const server of servers) server.close();
}

const watchdog = setTimeout(() => {
  console.error(`FAIL: the test took longer than ${TOTAL_LIMIT_MS / 1000} s`);
  for (const child of children) if (!child.exit) child.proc.kill('SIGKILL');
  process.exit(1);
}, TOTAL_LIMIT_MS);

try {
  await run();
  await cleanUp();
  clearTimeout(watchdog);
  log('PASS');
  process.exit(0);
} catch (error) {
  console.error(`FAIL: ${error instanceof Failure ? error.message : error.stack || error}`);
  if (page && browser) {
    try {
      console.error(`  page: ${page.url()}`);
      const notice = await page.$eval('#notice-text', (e) => e.textContent).catch(() => '');
      if (notice) console.error(`  notice: ${notice.trim()}`);
      const file = path.join(shots, 'failure.png');
      await page.screenshot({path: file});
      console.error(`  screenshot: ${file}`);
    } catch (e) {
      // the page is gone
    }
  }
  if (consoleProblems.length) console.error(`  browser console:\n    ${consoleProblems.join('\n    ')}`);
  for (const child of children) {
    console.error(`--- ${child.name} stderr (last 3000 characters):\n${child.err.slice(-3000)}`);
  }
  await cleanUp();
  process.exit(1);
}
