// Shared by the browser scenarios (tests/browser/*.mjs), which
// tests/blackbox/test_browser.py runs one at a time: launch Debian's chromium
// headless through playwright-core (never a downloaded browser), open pages of
// `spoolctl serve`, and report.
//
// A scenario is `node SCENARIO.mjs '<json>'`; the JSON holds at least `url` (the
// server's base URL) and `root` (the spool root). It prints what it did, then
// "PASS" and exits 0, or "FAIL: why" and exits 1. Lines "TIMING name=ms" are
// measurements the Python side prints.
//
// Environment: SPOOLD_CHROMIUM (default /usr/bin/chromium); SPOOLD_SCREENSHOTS=DIR
// makes the scenarios that take screenshots (see shot()) save them there.
import { chromium } from 'playwright-core';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export const CHROMIUM = process.env.SPOOLD_CHROMIUM || '/usr/bin/chromium';
// Without the background-networking flags chromium keeps trying to reach
// Google's services, which fails noisily on a closed network.
const CHROMIUM_ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
];
export const VIEWPORT = { width: 1280, height: 800 };

export class Failure extends Error {}

export function check(condition, message) {
  if (!condition) throw new Failure(message);
}

export function log(...parts) {
  console.log(...parts);
}

export function timing(name, ms) {
  console.log(`TIMING ${name}=${Math.round(ms)}`);
}

export function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// Polls `predicate` (sync or async) every `interval` ms until it returns a
// truthy value, which is returned; fails with `what` at the deadline.
export async function waitFor(predicate, { timeout = 10000, interval = 20, what = 'a condition' } = {}) {
  const deadline = Date.now() + timeout;
  let lastError = null;
  for (;;) {
    try {
      const value = await predicate();
      if (value) return value;
      lastError = null;
    } catch (err) {
      if (err instanceof Failure) throw err;
      lastError = err;
    }
    if (Date.now() > deadline) {
      throw new Failure(`timed out after ${timeout} ms waiting for ${what}` +
                        (lastError ? ` (last error: ${lastError.message})` : ''));
    }
    await sleep(interval);
  }
}

export function readJson(file) {
  return JSON.parse(fs.readFileSync(file, 'utf8'));
}

export function sha256(bytes) {
  return crypto.createHash('sha256').update(bytes).digest('hex');
}

// SPEC section 2: write the whole file under tmp/, then rename it into incoming/.
export function dropJob(root, id, toml) {
  const tmp = path.join(root, 'tmp', `.browser-${process.pid}-${id}`);
  fs.writeFileSync(tmp, toml);
  fs.renameSync(tmp, path.join(root, 'incoming', `${id}.toml`));
}

export function statusOnDisk(root, id) {
  try {
    return readJson(path.join(root, 'jobs', id, 'status.json'));
  } catch {
    return null;
  }
}

// The page's own sign that its first data load is done (the DOM contract).
export async function waitReady(page, what) {
  try {
    await page.waitForFunction(() => document.body && document.body.dataset.ready === '1',
                               null, { timeout: 10000 });
  } catch {
    throw new Failure(`${what}: document.body.dataset.ready never became "1" within 10 s ` +
                      `(body starts: ${JSON.stringify((await bodyText(page)).slice(0, 300))})`);
  }
}

export async function bodyText(page) {
  try {
    return await page.evaluate(() => (document.body ? document.body.innerText : ''));
  } catch {
    return '';
  }
}

export async function visible(page, selector) {
  const el = await page.$(selector);
  return el !== null && (await el.isVisible());
}

export async function textOf(page, selector) {
  const el = await page.$(selector);
  return el === null ? null : (await el.textContent());
}

// Opens `url` + `route` and waits for data-ready; counts full loads so that a
// scenario can assert that what it waited for came without a reload.
export async function open(page, route) {
  const target = new URL(route, page.__base).toString();
  const response = await page.goto(target, { waitUntil: 'domcontentloaded' });
  check(response && response.ok(), `GET ${route}: HTTP ${response ? response.status() : 'no response'}`);
  await waitReady(page, route);
  return response;
}

export function loadsOf(page) {
  return page.__loads;
}

// Saves a 1280x800 screenshot DIR/NAME when SPOOLD_SCREENSHOTS=DIR is set.
export async function shot(page, name) {
  const dir = process.env.SPOOLD_SCREENSHOTS;
  if (!dir) return;
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(path.resolve(dir), name);
  await page.screenshot({ path: file, fullPage: false });
  log(`screenshot: ${file}`);
}

// Runs one scenario: `body({ args, browser, context, page, newPage })`.
// Every page fails the scenario on an uncaught script error and on a request
// that leaves the server (the page must work offline, without CDNs).
export async function scenario(name, body) {
  const started = Date.now();
  let args;
  try {
    args = JSON.parse(process.argv[2] || '{}');
  } catch (err) {
    console.log(`FAIL: ${name}: the argument is not JSON: ${err.message}`);
    process.exit(2);
  }
  const problems = [];
  let browser = null;
  let exitCode = 0;
  const pages = [];
  try {
    check(fs.existsSync(CHROMIUM), `no chromium at ${CHROMIUM}`);
    const t0 = Date.now();
    // launch() gives chromium a fresh temporary profile and removes it on close.
    browser = await chromium.launch({
      executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, timeout: 60000,
    });
    timing('chromium_start_ms', Date.now() - t0);
    log(`chromium ${browser.version()}`);
    const context = await browser.newContext({ viewport: VIEWPORT, acceptDownloads: true });
    const base = args.url;
    // The servers of the scenario (the read-only one too).
    const origins = [args.url, args.ro_url].filter(Boolean).map((u) => new URL(u).origin);
    const newPage = async () => {
      const page = await context.newPage();
      page.__base = base;
      page.__loads = 0;
      page.on('load', () => { page.__loads += 1; });
      page.on('pageerror', (err) => problems.push(`uncaught error in the page (${page.url()}): ${err.message}`));
      page.on('console', (msg) => {
        if (msg.type() === 'error') log(`console error (${page.url()}): ${msg.text()}`);
      });
      page.on('response', (res) => {
        if (res.status() >= 400) log(`HTTP ${res.status()} for ${res.request().method()} ${res.url()}`);
      });
      page.on('dialog', (dialog) => {
        log(`dialog (${dialog.type()}): ${dialog.message()}: accepted`);
        dialog.accept().catch(() => {});
      });
      page.on('request', (req) => {
        const u = req.url();
        if (!u.startsWith('data:') && !u.startsWith('blob:') && !origins.includes(new URL(u).origin)) {
          problems.push(`the page requested ${u}, outside the server`);
        }
      });
      pages.push(page);
      return page;
    };
    const page = await newPage();
    await body({ args, browser, context, page, newPage });
    check(problems.length === 0, problems.join('\n'));
    log('PASS');
  } catch (err) {
    exitCode = 1;
    const msg = err instanceof Failure ? err.message : (err && err.stack) || String(err);
    console.log(`FAIL: ${name}: ${msg}`);
    for (const p of problems) console.log(`also: ${p}`);
    for (const page of pages) {
      try {
        if (page.isClosed()) continue;
        console.log(`--- page ${page.url()} at the failure (text) ---`);
        console.log((await bodyText(page)).slice(0, 3000));
        const dir = process.env.SPOOLD_BROWSER_FAIL_DIR || os.tmpdir();
        const file = path.join(dir, `spoold-browser-${name}-${process.pid}-${pages.indexOf(page)}.png`);
        await page.screenshot({ path: file });
        console.log(`--- screenshot at the failure: ${file} ---`);
      } catch { /* the page may be gone */ }
    }
  } finally {
    if (browser) await browser.close().catch(() => {});
    timing('scenario_ms', Date.now() - started);
  }
  process.exit(exitCode);
}
