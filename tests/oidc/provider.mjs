// A real OpenID provider for the integration tests: panva's oidc-provider (OpenID-certified),
// installed in tests/node_modules by scripts/test.sh (`npm ci --prefix tests`). Version 8.x
// (tests/package.json): 9.x supports Node.js 22 LTS and later only (it warns "Unsupported
// runtime" on Node 20), 8.x Node.js 18 LTS and later. Neither declares `engines`.
//
//   node tests/oidc/provider.mjs CONFIG.json
//
// CONFIG.json (tests/support/oidc.rs writes it):
//   {
//     "port": 0,                          // 0: the kernel picks one (printed in READY)
//     "signing_key": { "kid": "k1", "pem": "/tmp/.../signing.pem" },  // RSA, PKCS#8 PEM
//     "clients": [{ "client_id": "...", "client_secret": "...",
//                   "redirect_uris": ["https://127.0.0.1:8443/cb"],
//                   "post_logout_redirect_uris": [...],
//                   "backchannel_logout_uri": "https://127.0.0.1:8443/bcl",   // optional
//                   "backchannel_logout_session_required": true,
//                   "token_endpoint_auth_method": "client_secret_basic" }],
//     "accounts": [{ "login": "alice", "password": "...", "sub": "u-alice",
//                    "email": "alice@example.test", "groups": ["admins"], "name": "Alice" }],
//     "ttl": { "IdToken": 600, ... }      // optional, seconds, merged over the defaults below
//   }
//
// It listens on 127.0.0.1 only, prints `READY <issuer>` on stdout once listening, logs every
// request and every provider event worth seeing to stderr, and exits when stdin closes (so a
// test that dies never leaves it behind) or on SIGTERM / SIGINT.
//
// Login is this file's own pair of pages (login + consent), not oidc-provider's
// devInteractions: devInteractions accepts any login with no password at all, and the tests
// need a wrong password to fail. The forms look like devInteractions' (a `login` and a
// `password` input, a hidden `prompt`), so a browser-like client fills them the same way.

import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';

import Provider from 'oidc-provider';

const cfgPath = process.argv[2];
if (!cfgPath) {
  process.stderr.write('usage: node provider.mjs CONFIG.json\n');
  process.exit(2);
}
const cfg = JSON.parse(fs.readFileSync(cfgPath, 'utf8'));
const log = (...parts) => process.stderr.write(`[oidc-provider] ${parts.join(' ')}\n`);

// ---- accounts -------------------------------------------------------------------------------

const accounts = cfg.accounts ?? [];
const bySub = new Map(accounts.map((a) => [a.sub, a]));
const byLogin = new Map(accounts.map((a) => [a.login, a]));

function passwordMatches(account, given) {
  const a = Buffer.from(String(account.password));
  const b = Buffer.from(String(given ?? ''));
  return a.length === b.length && crypto.timingSafeEqual(a, b);
}

// ---- signing key ----------------------------------------------------------------------------

const { kid, pem } = cfg.signing_key;
const jwk = {
  ...crypto.createPrivateKey(fs.readFileSync(pem, 'utf8')).export({ format: 'jwk' }),
  kid,
  alg: 'RS256',
  use: 'sig',
};
if (jwk.kty !== 'RSA') throw new Error(`signing_key must be RSA, got ${jwk.kty}`);

// ---- outbound requests (back-channel logout) ------------------------------------------------

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '[::1]']);

// oidc-provider POSTs logout tokens with `got` through Node's global agents. HTTPS trust comes
// from NODE_EXTRA_CA_CERTS (the gateway's self-signed certificate), which Node adds to the
// default trust store those agents use. Loopback only: the tests never reach anything else.
function httpOptions(url) {
  if (!LOOPBACK.has(url.hostname)) {
    throw new Error(`test provider: refusing a request to ${url.href} (loopback only)`);
  }
  return { signal: AbortSignal.timeout(2500) };
}

// ---- the server first: with port 0 the issuer is known only once it listens ---------------

let handler = (req, res) => {
  res.statusCode = 503;
  res.end('starting');
};
const server = http.createServer((req, res) => handler(req, res));
server.keepAliveTimeout = 2000;
await new Promise((resolve, reject) => {
  server.once('error', reject);
  server.listen(cfg.port ?? 0, '127.0.0.1', resolve);
});
const issuer = `http://127.0.0.1:${server.address().port}`;

// ---- the provider ---------------------------------------------------------------------------

const clients = (cfg.clients ?? []).map((c) => ({
  grant_types: ['authorization_code'],
  response_types: ['code'],
  token_endpoint_auth_method: 'client_secret_basic',
  ...c,
}));

const provider = new Provider(issuer, {
  clients,
  jwks: { keys: [jwk] },

  async findAccount(_ctx, sub) {
    const account = bySub.get(sub);
    if (!account) return undefined;
    return {
      accountId: sub,
      // oidc-provider keeps only the claims the granted scopes (see `claims`) allow.
      async claims() {
        return {
          sub,
          name: account.name,
          preferred_username: account.login,
          email: account.email,
          email_verified: account.email !== undefined,
          groups: account.groups ?? [],
        };
      },
    };
  },

  // Scope -> claims. `groups` is a scope of its own; `profile` carries `name`.
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name', 'preferred_username'],
    groups: ['groups'],
  },
  // By default (conform mode) an ID token issued next to an access token (response_type
  // code) carries no scope claims: they are left to userinfo. The gateway reads them from the
  // ID token, as many providers send them.
  conformIdTokenClaims: false,

  // PKCE for every client, not only public ones, and S256 only (no `plain`).
  pkce: { methods: ['S256'], required: () => true },

  features: {
    // Replaced by the login and consent pages below (devInteractions checks no password).
    devInteractions: { enabled: false },
    backchannelLogout: { enabled: true },
    revocation: { enabled: true },
    userinfo: { enabled: true },
    rpInitiatedLogout: {
      enabled: true,
      // The default pages import a web font: these have no outside reference at all.
      async logoutSource(ctx, form) {
        ctx.type = 'html';
        ctx.body = page('Logout Request', `<h1>Do you want to sign-out from ${esc(ctx.host)}?</h1>
${form}
<button autofocus type="submit" form="op.logoutForm" value="yes" name="logout">Yes, sign me out</button>
<button type="submit" form="op.logoutForm">No, stay signed in</button>`);
      },
      async postLogoutSuccessSource(ctx) {
        ctx.type = 'html';
        ctx.body = page('Sign-out Success', '<h1>Sign-out Success</h1>');
      },
    },
  },

  interactions: {
    url: (_ctx, interaction) => `/interaction/${interaction.uid}`,
  },

  // Signed cookies (koa keygrip), with a key of this run. Over plain http oidc-provider sets
  // no `Secure` attribute (it adds it only when the request came over TLS), so a client keeps
  // and sends its cookies to http://127.0.0.1 as a browser would. The session cookie is
  // `SameSite=None` by default, which Chromium drops when it is not `Secure` (oidc-provider
  // then falls back on a `.legacy` twin): `Lax` works over http, and still goes along with
  // the top-level navigations (GET /auth, the logout form) the tests make.
  cookies: {
    keys: [crypto.randomBytes(32).toString('base64url')],
    long: { httpOnly: true, sameSite: 'lax' },
  },

  ttl: {
    AccessToken: 600,
    AuthorizationCode: 60,
    IdToken: 600,
    Interaction: 600,
    Session: 3600,
    Grant: 3600,
    ...(cfg.ttl ?? {}),
  },

  httpOptions,

  // Errors on a plain page with no outside reference (the default page imports a web font).
  async renderError(ctx, out) {
    ctx.type = 'html';
    ctx.body = page('Error', `<h1>oops! something went wrong</h1>${Object.entries(out)
      .map(([k, v]) => `<pre><strong>${esc(k)}</strong>: ${esc(v)}</pre>`).join('')}`);
  },
});

for (const event of [
  'server_error', 'authorization.error', 'grant.error', 'end_session.error',
  'backchannel.error', 'userinfo.error', 'revocation.error', 'introspection.error',
]) {
  provider.on(event, (...args) => {
    const err = args.find((a) => a instanceof Error);
    log('event', event, err ? `${err.name}: ${err.message}${err.error_description ? ` (${err.error_description})` : ''}${err.cause ? ` cause: ${err.cause}` : ''}` : '');
  });
}
provider.on('backchannel.success', (_ctx, client, accountId, sid) => {
  log('event backchannel.success', `client=${client.clientId}`, `sub=${accountId}`, `sid=${sid}`);
});
provider.on('end_session.success', () => log('event end_session.success'));
provider.on('grant.success', () => log('event grant.success'));

// ---- login and consent pages ----------------------------------------------------------------

function esc(value) {
  return String(value).replace(/[&<>"']/g, (c) => ({
    '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;',
  })[c]);
}

function page(title, body) {
  return `<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>${esc(title)}</title></head>
<body>${body}</body></html>`;
}

function loginPage(uid, params, error) {
  return page('Sign-in', `<h1>Sign-in</h1>
${error ? `<p class="error">${esc(error)}</p>` : ''}
<p>client: ${esc(params.client_id)}</p>
<form id="login" autocomplete="off" action="/interaction/${esc(uid)}/login" method="post">
  <input type="hidden" name="prompt" value="login"/>
  <input required type="text" name="login" placeholder="Enter any login" value="${esc(params.login_hint ?? '')}"/>
  <input required type="password" name="password" placeholder="and password"/>
  <button type="submit">Sign-in</button>
</form>
<a href="/interaction/${esc(uid)}/abort">[ Cancel ]</a>`);
}

function consentPage(uid, params, details) {
  const scopes = (details.missingOIDCScope ?? []).filter((s) => s !== 'openid');
  const claims = details.missingOIDCClaims ?? [];
  return page('Authorize', `<h1>Authorize</h1>
<p>client: ${esc(params.client_id)}</p>
<ul>${scopes.map((s) => `<li>scope ${esc(s)}</li>`).join('')}${claims.map((c) => `<li>claim ${esc(c)}</li>`).join('')}</ul>
<form id="consent" autocomplete="off" action="/interaction/${esc(uid)}/confirm" method="post">
  <input type="hidden" name="prompt" value="consent"/>
  <button type="submit">Continue</button>
</form>
<a href="/interaction/${esc(uid)}/abort">[ Cancel ]</a>`);
}

function send(res, status, html) {
  res.statusCode = status;
  res.setHeader('Content-Type', 'text/html; charset=utf-8');
  res.setHeader('Cache-Control', 'no-store');
  res.end(html);
}

async function readForm(req) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > 64 * 1024) throw new Error('form too large');
    chunks.push(chunk);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

async function interaction(req, res, uid, action) {
  const details = await provider.interactionDetails(req, res);
  if (details.uid !== uid) {
    send(res, 400, page('Error', '<p>interaction mismatch</p>'));
    return;
  }
  const { prompt, params, session } = details;

  if (req.method === 'GET' && action === undefined) {
    if (prompt.name === 'login') send(res, 200, loginPage(uid, params));
    else if (prompt.name === 'consent') send(res, 200, consentPage(uid, params, prompt.details));
    else send(res, 501, page('Error', `<p>prompt ${esc(prompt.name)} not implemented</p>`));
    return;
  }

  if (req.method === 'GET' && action === 'abort') {
    await provider.interactionFinished(req, res, {
      error: 'access_denied',
      error_description: 'End-User aborted interaction',
    }, { mergeWithLastSubmission: false });
    return;
  }

  if (req.method === 'POST' && action === 'login' && prompt.name === 'login') {
    const form = await readForm(req);
    const account = byLogin.get(form.get('login') ?? '');
    if (!account || !passwordMatches(account, form.get('password'))) {
      log('login failed for', JSON.stringify(form.get('login')));
      send(res, 200, loginPage(uid, params, 'Invalid login or password.'));
      return;
    }
    log('login ok for', account.login, `sub=${account.sub}`);
    await provider.interactionFinished(req, res, {
      login: { accountId: account.sub },
    }, { mergeWithLastSubmission: false });
    return;
  }

  if (req.method === 'POST' && action === 'confirm' && prompt.name === 'consent') {
    await readForm(req);
    const { details: missing } = prompt;
    const grant = details.grantId
      ? await provider.Grant.find(details.grantId)
      : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
    if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
    if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
    if (missing.missingResourceScopes) {
      for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes)) {
        grant.addResourceScope(indicator, scopes.join(' '));
      }
    }
    const grantId = await grant.save();
    await provider.interactionFinished(req, res, { consent: { grantId } }, {
      mergeWithLastSubmission: true,
    });
    return;
  }

  send(res, 400, page('Error', `<p>unexpected ${esc(req.method)} for prompt ${esc(prompt.name)}</p>`));
}

const INTERACTION = /^\/interaction\/([A-Za-z0-9_-]+)(?:\/(login|confirm|abort))?$/;
const oidc = provider.callback();

handler = (req, res) => {
  const started = Date.now();
  res.on('finish', () => {
    log(req.method, req.url, res.statusCode, res.getHeader('location') ? `-> ${res.getHeader('location')}` : '', `${Date.now() - started}ms`);
  });
  const path = new URL(req.url, issuer).pathname;
  const m = INTERACTION.exec(path);
  if (!m) {
    oidc(req, res);
    return;
  }
  interaction(req, res, m[1], m[2]).catch((err) => {
    log('interaction error', `${err.name}: ${err.message}`);
    if (!res.headersSent) send(res, 400, page('Error', `<p>${esc(err.name)}: ${esc(err.message)}</p>`));
    else res.end();
  });
};

// ---- lifetime -------------------------------------------------------------------------------

function shutdown(why) {
  log('exiting:', why);
  server.close();
  server.closeAllConnections?.();
  process.exit(0);
}
process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));
process.stdin.on('end', () => shutdown('stdin closed'));
process.stdin.on('close', () => shutdown('stdin closed'));
process.stdin.on('error', () => shutdown('stdin error'));
process.stdin.resume();

process.stdout.write(`READY ${issuer}\n`);
log('listening, issuer', issuer, 'clients', clients.map((c) => c.client_id).join(','));
