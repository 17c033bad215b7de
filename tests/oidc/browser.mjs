// A real browser through the OpenID login (tests/oidc_browser.rs runs it): headless Debian
// chromium driven by playwright-core (tests/node_modules, which downloads no browser of its
// own; scripts/test.sh installs chromium with apt-get). Only a browser enforces `SameSite`,
// `__Host-` and `Secure` on the redirects between the provider and the gateway, which the
// cookie-keeping HTTP client of tests/support/oidc.rs merely imitates.
//
//   node tests/oidc/browser.mjs --scenario login|replay --start URL --until URL \
//        --callback URL [--user alice] [--password alice-password]
//
//   --start     the gateway's login URL (`.../auth/oidc/login?return_to=/api/app`)
//   --until     the absolute URL the login must end on (the gateway origin + return_to)
//   --callback  the gateway's callback URL, without query (`.../auth/oidc/callback`)
//   CHROMIUM_PATH (environment): the browser binary; /usr/bin/chromium when unset.
//
// Scenario `login`: opens --start, signs in on the provider's login page (`login` and
// `password` inputs), confirms its consent page when it shows, and waits until the browser has
// loaded --until (the gateway's callback page moves there by itself, `<meta refresh>`).
// Scenario `replay`: the same login in context A, but A's navigation to the callback is held
// (the DevTools Fetch domain: page.route does not see a request a redirect made); a new
// context B (another browser: no cookies) opens that callback URL; then A's held navigation
// goes on and A finishes its login.
//
// Prints ONE line of JSON on stdout and exits 0:
//   login:  { final_url, status, body, sent_cookies, cookies, trail }
//   replay: { callback, other: { status, body, cookies },
//             original: { final_url, status, body, sent_cookies, cookies }, trail }
// where `status` and `body` are those of the final page, `sent_cookies` the names of the
// cookies its request carried, `cookies` what the context holds for the gateway's host
// (name, path, sameSite, secure, httpOnly, expires; no values) and `trail` every main-frame
// response (redirects included) and console message. On any failure it prints
// `{"error": ..., "trail": ...}` and exits 1. Every wait is bounded (10 s), the whole run is
// bounded (50 s), and the browser is closed on every path.

import { parseArgs } from 'node:util';

import { chromium } from 'playwright-core';

const STEP_MS = 10_000;
const TOTAL_MS = 50_000;

const { values: opt } = parseArgs({
  options: {
    scenario: { type: 'string', default: 'login' },
    start: { type: 'string' },
    until: { type: 'string' },
    callback: { type: 'string' },
    user: { type: 'string', default: 'alice' },
    password: { type: 'string' },
  },
});
for (const name of ['start', 'until', 'callback']) {
  if (!opt[name]) usage(`--${name} is required`);
}
if (!['login', 'replay'].includes(opt.scenario)) usage(`unknown --scenario ${opt.scenario}`);
const password = opt.password ?? `${opt.user}-password`;
const executablePath = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const gatewayHost = new URL(opt.start).hostname;

function usage(why) {
  process.stderr.write(`browser.mjs: ${why}\n`);
  process.exit(2);
}

// What each context went through, for the failure report: every main-frame document response
// (redirects included) and every console message or page error.
const trail = [];
// The last main-frame document response per context and URL.
const documents = new Map();
const log = (...parts) => process.stderr.write(`[browser] ${parts.join(' ')}\n`);

let browser;
let finished = false;

async function closeBrowser() {
  if (!browser) return;
  const b = browser;
  browser = undefined;
  await Promise.race([b.close().catch(() => {}), sleep(5_000)]);
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}

async function fail(message) {
  if (finished) return;
  finished = true;
  process.stdout.write(`${JSON.stringify({ error: message, trail })}\n`);
  await closeBrowser();
  process.exit(1);
}

// The whole run is bounded whatever hangs (unref: it does not keep node alive by itself).
setTimeout(() => {
  fail(`the browser run took more than ${TOTAL_MS} ms`);
}, TOTAL_MS).unref();
process.on('unhandledRejection', (err) => fail(`unhandled: ${err?.stack ?? err}`));

/// A fresh context (its own cookie jar: another browser) and page, with its trail recorded.
async function newPage(label) {
  const context = await browser.newContext();
  context.setDefaultTimeout(STEP_MS);
  context.setDefaultNavigationTimeout(STEP_MS);
  const page = await context.newPage();
  page.on('response', (resp) => {
    const req = resp.request();
    if (req.isNavigationRequest() && req.frame() === page.mainFrame()) {
      trail.push({ context: label, method: req.method(), url: resp.url(), status: resp.status() });
      documents.set(`${label} ${resp.url()}`, resp);
    }
  });
  page.on('console', (msg) => trail.push({ context: label, console: msg.text() }));
  page.on('pageerror', (err) => trail.push({ context: label, pageerror: String(err) }));
  page.on('requestfailed', (req) => {
    trail.push({ context: label, failed: req.url(), why: req.failure()?.errorText });
  });
  return { context, page };
}

/// Signs in on the provider's login page, then confirms the consent page if one shows. Stops
/// once the consent form is submitted (or, without consent, once the login form is).
async function signIn(page) {
  const provider = new URL(page.url()).origin;
  const form = page.locator('form#login');
  await form.waitFor({ state: 'visible' });
  await form.locator('input[name="login"]').fill(opt.user);
  await form.locator('input[name="password"]').fill(password);
  await form.locator('button[type="submit"]').click();
  // Next: the consent page, the login page again with an error, or straight on to the gateway.
  const next = await Promise.race([
    page.locator('form#consent').waitFor({ state: 'visible' }).then(() => 'consent'),
    page.locator('p.error').waitFor({ state: 'visible' }).then(() => 'error'),
    page.waitForURL((u) => u.origin !== provider, { waitUntil: 'commit' }).then(() => 'left'),
  ]);
  if (next === 'error') {
    throw new Error(`the provider refused the login: ${await page.locator('p.error').innerText()}`);
  }
  if (next === 'consent') {
    // noWaitAfter: in the replay scenario the navigation this starts is held, and click would
    // otherwise wait for it.
    await page.locator('form#consent button[type="submit"]').click({ noWaitAfter: true });
  }
}

/// Once `page` has loaded `url`: its URL, the status of that document's response, the page's
/// text, and the names of the cookies its request carried.
async function landed(page, label, url) {
  await page.waitForURL(url, { waitUntil: 'load' });
  const resp = documents.get(`${label} ${url}`);
  return {
    final_url: page.url(),
    status: resp?.status() ?? null,
    body: await page.locator('body').innerText(),
    sent_cookies: resp ? await sentCookieNames(resp.request()) : null,
  };
}

/// The cookies this context holds for the gateway's host (cookies are per host, not per port:
/// the provider's, on the same loopback address, are among them), as Chromium keeps them.
async function cookiesOf(context) {
  const all = await context.cookies();
  return all
    .filter((c) => c.domain === gatewayHost)
    .map((c) => ({
      name: c.name,
      path: c.path,
      sameSite: c.sameSite,
      secure: c.secure,
      httpOnly: c.httpOnly,
      expires: c.expires,
    }));
}

/// The cookie names a request carried (names only).
async function sentCookieNames(request) {
  const header = (await request.allHeaders()).cookie ?? '';
  return header.split(/;\s*/).filter(Boolean).map((c) => c.split('=')[0]);
}

async function loginScenario() {
  const { context, page } = await newPage('A');
  await page.goto(opt.start);
  await signIn(page);
  const result = await landed(page, 'A', opt.until);
  return { scenario: 'login', ...result, cookies: await cookiesOf(context), trail };
}

async function replayScenario() {
  const a = await newPage('A');
  // Hold A's navigation to the callback. page.route cannot: Playwright lets a request that a
  // redirect made (the provider's 303 to the callback) through unrouted.
  const cdp = await a.context.newCDPSession(a.page);
  let paused;
  const held = new Promise((resolve) => {
    paused = resolve;
  });
  cdp.on('Fetch.requestPaused', (ev) => paused(ev));
  await cdp.send('Fetch.enable', {
    patterns: [{ urlPattern: `${opt.callback}*`, requestStage: 'Request' }],
  });
  await a.page.goto(opt.start);
  await signIn(a.page);
  const ev = await Promise.race([
    held,
    sleep(STEP_MS).then(() => {
      throw new Error(`no navigation to ${opt.callback} within ${STEP_MS} ms`);
    }),
  ]);
  const callbackUrl = ev.request.url;

  // Another browser with A's callback URL.
  const b = await newPage('B');
  const resp = await b.page.goto(callbackUrl);
  const other = {
    status: resp?.status() ?? null,
    body: await b.page.locator('body').innerText(),
    cookies: await cookiesOf(b.context),
  };

  // A's own navigation goes on: its login was not spent by B's attempt.
  await cdp.send('Fetch.continueRequest', { requestId: ev.requestId });
  await cdp.send('Fetch.disable');
  const original = await landed(a.page, 'A', opt.until);
  original.cookies = await cookiesOf(a.context);

  return { scenario: 'replay', callback: callbackUrl, other, original, trail };
}

try {
  browser = await chromium.launch({
    executablePath,
    headless: true,
    timeout: STEP_MS,
    args: ['--ignore-certificate-errors', '--no-sandbox'],
  });
  log('chromium', browser.version(), 'from', executablePath);
  const report = opt.scenario === 'login' ? await loginScenario() : await replayScenario();
  if (!finished) {
    finished = true;
    process.stdout.write(`${JSON.stringify(report)}\n`);
    await closeBrowser();
    process.exit(0);
  }
} catch (err) {
  await fail(String(err?.stack ?? err));
}
