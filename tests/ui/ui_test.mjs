// ui_test.mjs - the dashboard in Debian's chromium, driven by playwright-core; run by
// tests/e2e/test_ui.sh inside the suite's netns (agent on $BASE, gateway on $GWBASE).
// One browser, one context, one page, sequential: Chromium is heavy on 2 cores.
// Prints TAP lines numbered from $N0 (the shell part's count); the shell prints the plan.
import { chromium } from 'playwright-core';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

const E = process.env;
const require = createRequire(import.meta.url);
const axeSrc = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');
let n = Number(E.N0 || 0);
function ok(cond, name, diag) {
  n++;
  console.log(`${cond ? 'ok' : 'not ok'} ${n} - ${name}`);
  if (!cond && diag !== undefined) console.log('# ' + String(typeof diag === 'string' ? diag : JSON.stringify(diag)).slice(0, 2000).replace(/\n/g, '\n# '));
  return cond;
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
async function api(tok, path, { method = 'GET', body, headers = {} } = {}) {
  const h = { ...headers };
  if (tok) h.Authorization = 'Bearer ' + tok;
  if (body !== undefined) h['Content-Type'] = 'application/json';
  const r = await fetch(E.BASE + path, { method, headers: h, body: body === undefined ? undefined : JSON.stringify(body) });
  const t = await r.text();
  let j = null;
  try { j = JSON.parse(t); } catch (_) { j = t; }
  return { status: r.status, body: j };
}
// until FN() is truthy (polled), or the deadline; returns the last value
async function until(fn, ms = 15000, every = 200) {
  const end = Date.now() + ms;
  let v;
  for (;;) {
    try { v = await fn(); } catch (e) { v = undefined; }
    if (v || Date.now() > end) return v;
    await sleep(every);
  }
}

// ---- traffic through the gateway and the consume API while the browser looks --------------
const U2 = '00000000-0000-0000-0000-0000000000a2';
let traffic = true, sent = 0;
async function chat(model) {
  try {
    const r = await fetch(E.GWBASE + '/v1/chat/completions', { method: 'POST',
      headers: { Authorization: 'Bearer ' + E.TU, 'Content-Type': 'application/json' },
      body: JSON.stringify({ model, max_tokens: 8, messages: [{ role: 'user', content: 'hello' }] }) });
    await r.text();
    sent++;
  } catch (_) { /* counted by the agent anyway */ }
}
// the user's org pool on the consume API: 60000 of 100000 tokens every 2 s leaks back only
// 2000: every other call is a 429 (rejected rows for the log's filters)
async function consume() {
  await api(E.TU, '/api/v1/tokens/consume', { method: 'POST', body: { userId: E.U1, orgId: E.O1, provider: 'qwen', tokens: 60000 } });
}
const models = ['gpt-4o-mini', 'gemini-1.5-flash', 'gpt-4o-mini', 'qwen-turbo'];
async function trafficLoop() {
  let i = 0;
  while (traffic) {
    await chat(models[i % models.length]);
    if (i % 8 === 0) await consume();
    i++;
    await sleep(150);
  }
}

const shots = [];
async function main() {
  for (let i = 0; i < 12; i++) await chat(models[i % models.length]);
  await consume(); await consume();
  let loop = trafficLoop();

  const browser = await chromium.launch({ executablePath: E.CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu', '--no-first-run'] });
  const context = await browser.newContext({ viewport: { width: 1366, height: 768 }, colorScheme: 'light', acceptDownloads: true });
  const page = await context.newPage();
  page.setDefaultTimeout(20000); // generous: other suites share the 2 cores
  const cspErrors = [], pageErrors = [], urls = [];
  page.on('console', (m) => { if (m.type() === 'error' && /Content Security Policy|Refused to/i.test(m.text())) cspErrors.push(m.text()); });
  page.on('pageerror', (e) => pageErrors.push(String(e)));
  page.on('request', (r) => urls.push(r.url()));
  page.on('framenavigated', (f) => urls.push(f.url()));

  async function axe(view) {
    await page.evaluate(axeSrc); // CDP evaluation: the page's CSP forbids injected <script>s, as it should
    const res = await page.evaluate(() => window.axe.run(document, { resultTypes: ['violations'] }));
    const bad = res.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
    ok(!bad.length, `axe: no serious or critical violation on ${view}`,
      bad.map((v) => `${v.id} (${v.impact}): ${v.help} @ ${v.nodes.slice(0, 3).map((x) => x.target.join(' ')).join(' | ')}`).join('\n'));
  }
  async function shot(name) {
    const file = `${E.SHOTS}/${name}.png`;
    await page.evaluate(() => { document.getElementById('toast').textContent = ''; });
    const [w, vw] = await page.evaluate(() => [document.documentElement.scrollWidth, window.innerWidth]);
    ok(w <= vw, `${name}: fits the ${vw} px wide window, no sideways scroll (${w} px)`);
    await page.screenshot({ path: file, fullPage: true });
    shots.push(file);
  }
  // the address bar now, and every URL requested or navigated to since `since` (an index in
  // urls: the sign-in link itself carries its code, by design)
  async function storageClean(when, secrets, since = 0) {
    const s = await page.evaluate(() => ({ href: location.href, ls: localStorage.length, ss: sessionStorage.length, cookie: document.cookie }));
    const leaked = secrets.filter((x) => x && (s.href.includes(x) || urls.slice(since).some((u) => u.includes(x))));
    ok(!leaked.length && !/code=|token=/i.test(s.href), `${when}: the token is not in the URL (${s.href})`);
    ok(s.ls === 0 && s.ss === 0 && s.cookie === '', `${when}: nothing in localStorage, sessionStorage or cookies`, s);
  }
  const h1 = () => page.locator('main h1').first().textContent();
  async function view(id) {
    await page.evaluate((x) => { location.hash = '#/' + x; }, id);
    await page.waitForFunction((x) => document.querySelector('#nav a[aria-current="page"]')?.dataset.id === x, id);
  }
  const navIds = () => page.$$eval('#nav a', (as) => as.map((a) => a.dataset.id));

  // ---- sign-in screen ---------------------------------------------------------------------
  const resp = await page.goto(E.BASE + '/ui/');
  ok(resp.status() === 200, 'the browser loads /ui/');
  await page.waitForSelector('#cred');
  ok(true, 'the sign-in screen asks for a JWT or API key');
  await axe('sign-in');
  await shot('signin');

  // ---- a non-admin: its own usage, no admin view, the admin APIs refuse ------------------------
  await page.fill('#cred', E.TU);
  await page.click('form button[type=submit]');
  await page.waitForSelector('#nav a');
  const uNav = await navIds();
  ok(JSON.stringify(uNav) === JSON.stringify(['usage', 'logs']), `a USER sees only "My usage" and "Request log" (${uNav})`);
  await page.waitForSelector('table[aria-label="your budgets"] tbody tr');
  const budget = await page.textContent('table[aria-label="your budgets"]');
  ok(/openai|gemini|qwen/.test(budget) && /\d/.test(budget), 'the USER sees its own budgets', budget);
  await page.waitForSelector('table[aria-label="your requests"] tbody tr', { timeout: 8000 }).catch(() => {});
  const mine = await page.$$eval('table[aria-label="your requests"] tbody tr', (r) => r.length);
  ok(mine > 0, `the USER sees its own requests (${mine} rows)`);
  await axe('my usage');
  await shot('usage-user');
  for (const v of ['overview', 'keys', 'penalties', 'analytics']) {
    await page.evaluate((x) => { location.hash = '#/' + x; }, v);
    await page.waitForFunction(() => document.querySelector('main h1')?.textContent === 'Not available');
  }
  ok(true, 'a USER navigating to admin views by URL gets "Not available"');
  for (const [m, p, b] of [['GET', '/api/v1/admin/keys'], ['POST', '/api/v1/admin/penalties', { prefix: '192.0.2.1' }],
    ['GET', '/api/v1/analytics/usage'], ['GET', '/api/v1/analytics/top'], ['POST', '/api/v1/admin/breakers/openai/reset'],
    ['PUT', '/api/v1/admin/tiers/USER/openai', { capacity: 1, rate: '1/s' }]]) {
    const r = await api(E.TU, p, { method: m, body: b });
    ok(r.status === 403, `the API refuses the USER: ${m} ${p} -> ${r.status}`);
  }
  const own = await api(E.TU, '/api/v1/logs?limit=500');
  ok(own.status === 200 && own.body.items.length > 0 && own.body.items.every((i) => i.user_id === E.U1),
    `GET /api/v1/logs as the USER: only its own rows (${own.status}, ${own.body.items?.length} rows)`);
  const other = await api(E.TU, '/api/v1/logs?userId=' + U2);
  ok(other.status === 403 || (other.status === 200 && other.body.items.every((i) => i.user_id === E.U1)),
    `asking for another user's rows gives none of them (${other.status})`);
  await storageClean('after a USER sign-in', [E.TU]);
  await page.click('#signout');
  await page.waitForSelector('#cred');

  // ---- the admin, by the one-time link when the agent printed one ------------------------------
  let signedBy = 'JWT', mark = 0;
  if (E.LINK) {
    const code = E.LINK.split('#code=')[1];
    await page.goto(E.LINK.replace(/^http:\/\/[^/]+/, E.BASE));
    await page.waitForSelector('#nav a');
    mark = urls.length;
    const href = await page.evaluate(() => location.href);
    ok(!href.includes(code) && !href.includes('#code'), `the link's code is out of the address bar after sign-in (${href})`);
    const again = await api(null, '/api/v1/auth/token', { method: 'POST', body: { signin_code: code } });
    ok(again.status >= 400 && again.status < 500, `the link works once: a second exchange is refused (${again.status})`);
    signedBy = 'link';
  } else {
    await page.fill('#cred', E.TA);
    await page.click('form button[type=submit]');
    await page.waitForSelector('#nav a');
  }
  const aNav = await navIds();
  ok(['overview', 'tenants', 'keys', 'routes', 'penalties', 'logs', 'analytics'].every((x) => aNav.includes(x)),
    `the admin (signed in by ${signedBy}) sees every view (${aNav})`);
  await storageClean('after the admin sign-in', [E.TA, E.LINK && E.LINK.split('#code=')[1]], mark);

  // ---- Overview, live ----------------------------------------------------------------------------
  await view('overview');
  const adm = await until(async () => {
    const t = await page.textContent('.kpi .v');
    return Number(String(t).replace(/[^\d.]/g, '')) > 0 ? t : null;
  }, 15000);
  ok(!!adm, `overview: admitted req/s is live (${adm})`);
  const ov = await page.textContent('main');
  ok(/openai/.test(ov) && /closed|open/.test(ov), 'overview: breaker states are shown');
  ok(/drop_/.test(ov), 'overview: kernel drop counters are shown');
  const routesRow = await until(() => page.$$eval('table[aria-label="requests per provider and route"] tbody tr', (r) => r.length), 15000);
  ok(routesRow > 0, `overview: per provider and route rates (${routesRow} rows)`);
  ok(await page.$$eval('main canvas', (c) => c.length) >= 2, 'overview: the two uPlot charts are drawn');
  await sleep(6000); // a few more seconds of live points for the screenshot
  await axe('overview');
  await shot('overview');

  // ---- Tenants and quotas ---------------------------------------------------------------------
  await view('tenants');
  await page.waitForSelector('table[aria-label="remaining budgets"] tbody tr');
  const ten = await page.textContent('table[aria-label="remaining budgets"]');
  ok(ten.includes(E.U1) || ten.includes(E.O1), 'tenants: the traffic\'s user or org has a budget bar');
  await page.waitForSelector('table[aria-label="tiers"] tbody tr');
  const row = page.locator('table[aria-label="tiers"] tbody tr', { hasText: 'ADMIN' }).first();
  await row.locator('input[aria-label="capacity (tokens)"]').fill('2000000');
  await row.locator('button', { hasText: 'Save' }).click();
  const tier = await until(async () => {
    const r = await api(E.TA, '/api/v1/admin/tiers/ADMIN');
    return Object.values(r.body.providers || {}).some((l) => l.capacity === 2000000) ? r.body : null;
  });
  ok(!!tier, 'tenants: a tier edited in the table applies (the API reads 2000000)');
  await axe('tenants');
  await shot('tenants');

  // ---- API keys: create, edit, revoke; the API answers accordingly -------------------------------
  await view('keys');
  await page.waitForSelector('#keycreate select[aria-label="tier"] option', { state: 'attached' });
  await page.fill('#keycreate input[aria-label="name"]', 'ui-test');
  await page.fill('#keycreate input[aria-label="owner"]', E.U1);
  await page.selectOption('#keycreate select[aria-label="tier"]', 'USER');
  await page.fill('#keycreate input[aria-label="capacity"]', '5000');
  await page.fill('#keycreate input[aria-label="rate"]', '50/s');
  await page.click('#keycreate button[type=submit]');
  const secret = (await page.textContent('#secret')).trim();
  ok(/^lk_[^.]+\..+/.test(secret), 'keys: the new key\'s secret is shown once, with a copy button',
    await page.locator('.secret button').count());
  const keys = (await api(E.TA, '/api/v1/admin/keys')).body.keys;
  const key = keys.find((k) => k.name === 'ui-test');
  ok(key && !key.revoked && key.limits.capacity === 5000, 'keys: the API lists the key the UI created', key);
  const use1 = await api(null, '/api/v1/tokens/consume', { method: 'POST', headers: { 'X-API-Key': secret },
    body: { userId: E.U1, provider: 'openai', tokens: 5 } });
  ok(use1.status === 200, `keys: the new secret works on the consume API (${use1.status})`);
  const krow = page.locator('table[aria-label="API keys"] tbody tr', { hasText: key.id });
  await krow.waitFor();
  await krow.locator('input[aria-label="capacity (tokens)"]').fill('6000');
  await krow.locator('button', { hasText: 'Save' }).click();
  ok(!!(await until(async () => (await api(E.TA, '/api/v1/admin/keys/' + key.id)).body.limits.capacity === 6000)),
    'keys: limits edited in the UI apply (the API reads 6000)');
  ok(await krow.locator('svg.spark').count() === 1, 'keys: the key has a usage sparkline');
  await axe('API keys');
  await shot('keys');
  // the key's holder signs in with it: exchanged for a key-bound token, a non-admin's views
  await page.click('#signout');
  await page.fill('#cred', secret);
  await page.click('form button[type=submit]');
  await page.waitForSelector('#nav a');
  const kNav = await navIds();
  const who = await page.textContent('#who');
  ok(JSON.stringify(kNav) === JSON.stringify(['usage', 'logs']) && who.includes(E.U1),
    `sign-in with an API key: its owner's own views (${kNav}; ${who})`);
  await view('logs');
  await page.waitForSelector('table[aria-label="request log"] tbody tr');
  const kRows = await page.$$eval('table[aria-label="request log"] tbody tr', (rs) => rs.map((r) => r.cells[r.cells.length - 3].textContent));
  ok(kRows.length > 0 && kRows.every((x) => x === key.id), `the key's holder sees only the key's own requests (${kRows.length} rows)`, kRows.slice(0, 3));
  await storageClean('after an API-key sign-in', [secret], mark);
  await page.click('#signout');
  await page.fill('#cred', E.TA);
  await page.click('form button[type=submit]');
  await page.waitForSelector('#nav a');
  await view('keys');
  await krow.waitFor();
  await krow.locator('button', { hasText: 'Revoke' }).click();
  await krow.locator('button', { hasText: 'Confirm revoke' }).click();
  const rev = await until(async () => (await api(E.TA, '/api/v1/admin/keys/' + key.id)).body.revoked === true);
  ok(!!rev, 'keys: revoked through the UI, the API says revoked');
  const use2 = await api(null, '/api/v1/tokens/consume', { method: 'POST', headers: { 'X-API-Key': secret },
    body: { userId: E.U1, provider: 'openai', tokens: 5 } });
  ok(use2.status === 401 || use2.status === 403, `keys: the revoked secret is refused (${use2.status})`);
  // an admin key, made with the form's "admin" box: its holder signs in as an admin
  await page.fill('#keycreate input[aria-label="name"]', 'ui-admin');
  await page.fill('#keycreate input[aria-label="owner"]', E.U1);
  await page.check('#keycreate input[aria-label="admin key"]');
  await page.click('#keycreate button[type=submit]');
  await page.waitForFunction((old) => { const t = document.querySelector('#secret')?.textContent; return t && t.trim() !== old; }, secret);
  const aSecret = (await page.textContent('#secret')).trim();
  const aKey = (await api(E.TA, '/api/v1/admin/keys')).body.keys.find((k) => k.name === 'ui-admin');
  ok(aKey && aKey.admin === true && aSecret.startsWith(aKey.id + '.'), 'keys: the "admin" box makes an admin key (the API reads admin: true)', aKey);
  await page.click('#signout');
  await page.fill('#cred', aSecret);
  await page.click('form button[type=submit]');
  await page.waitForSelector('#nav a');
  const akNav = await navIds();
  const akWho = await page.textContent('#who');
  ok(['overview', 'tenants', 'keys', 'routes', 'penalties', 'logs', 'analytics'].every((x) => akNav.includes(x)) && /\(admin\)/.test(akWho),
    `sign-in with an admin API key: every admin view (${akNav}; ${akWho})`);
  await view('keys');
  await page.locator('table[aria-label="API keys"] tbody tr', { hasText: aKey.id }).waitFor();
  await storageClean('after an admin-key sign-in', [aSecret], mark);
  await page.click('#signout');
  await page.fill('#cred', E.TA);
  await page.click('form button[type=submit]');
  await page.waitForSelector('#nav a');
  ok((await api(E.TA, '/api/v1/admin/keys/' + aKey.id, { method: 'DELETE' })).status === 200, 'keys: the admin key revoked');

  // ---- Routes, providers, breakers: reset --------------------------------------------------------
  await view('routes');
  const rb = page.locator('button[data-breaker="svc:uitest"]');
  await rb.waitFor();
  // the gateway's health checks (lt_upstream), refreshed every 2 s
  const ups = await until(async () => {
    const rows = await page.$$eval('table[aria-label="upstreams"] tbody tr', (rs) => rs.map((r) => [...r.cells].map((c) => c.textContent)));
    const stub = rows.find((r) => r[0] === 'stub'), backend = rows.find((r) => r[0] === 'backend');
    return stub && backend && stub[2] === 'up' && backend[2] === 'down' ? { stub, backend } : null;
  }, 15000);
  const upApi = (await api(E.TA, '/api/v1/admin/upstreams')).body.upstreams;
  ok(!!ups && /ms/.test(ups.stub[3]) && ups.backend[8] !== '–' &&
    upApi.find((u) => u.service === 'stub')?.state === 'up' && upApi.find((u) => u.service === 'backend')?.state === 'down',
  'routes: upstream health from the gateway\'s checks: stub up with its check latency, backend down with its error (as the API says)', { ups, upApi });
  await axe('routes');
  await shot('routes');
  await rb.click();
  const closed = await until(async () => (await api(E.TA, '/api/v1/admin/breakers')).body.breakers.find((b) => b.name === 'svc:uitest')?.state === 'closed');
  ok(!!closed, 'routes: the Reset button closes an open breaker (the API reads closed)');
  const prov = await page.textContent('table[aria-label="providers"]');
  ok(/openai/.test(prov) && /ms/.test(prov), 'routes: providers with health and latency');

  // ---- Penalties: a ban through the UI is in the kernel's map --------------------------------------
  await view('penalties');
  await page.fill('#banform input[aria-label="prefix"]', '192.0.2.0/24');
  await page.fill('#banform input[aria-label="duration"]', '10m');
  await page.click('#banform button[type=submit]');
  await page.locator('table[aria-label="penalty box"] tbody tr', { hasText: '192.0.2.0/24' }).waitFor();
  const inMap = () => {
    const d = JSON.parse(execFileSync('bpftool', ['-j', 'map', 'dump', 'pinned', `${E.PIN}/lt_penalty`], { maxBuffer: 1 << 28 }));
    return d.map((e) => e.formatted && e.formatted.value).filter((v) => v && Number(v.tag) !== 0 && Number(v.until_ns) !== 0 &&
      Number(v.prefixlen) === 120 && v.addr.slice(12).map(Number).join('.') === '192.0.2.0');
  };
  ok(inMap().length === 1, 'penalties: the ban made in the UI is in bpftool map dump of lt_penalty (192.0.2.0/24)');
  await axe('penalties');
  await shot('penalties');
  const prow = page.locator('table[aria-label="penalty box"] tbody tr', { hasText: '192.0.2.0/24' });
  await prow.locator('button', { hasText: 'Unban' }).click();
  await prow.locator('button', { hasText: 'Confirm unban' }).click();
  ok(!!(await until(() => inMap().length === 0)), 'penalties: unbanned in the UI, gone from the kernel\'s map');

  // ---- Request log: filters, paging, detail ------------------------------------------------------
  // traffic pauses, so the UI and the API are compared on the same rows
  traffic = false;
  await loop;
  await sleep(1500); // the agent drains the ring into requests.db (well under a second)
  await view('logs');
  await page.waitForSelector('table[aria-label="request log"] tbody tr');
  const shown = async () => page.$$eval('table[aria-label="request log"] tbody tr', (rs) => rs.map((r) => [...r.cells].map((c) => c.textContent)));
  const heads = await page.$$eval('table[aria-label="request log"] thead th', (t) => t.map((x) => x.textContent));
  const col = (name) => heads.indexOf(name);
  async function filter(sets, check, name, apiQuery) {
    for (const [sel, v] of sets) {
      if (sel.startsWith('select')) await page.selectOption('#logfilters ' + sel, v); else await page.fill('#logfilters ' + sel, v);
    }
    const before = await page.evaluate(() => document.querySelector('main').dataset.loaded);
    await page.click('#logfilters button[type=submit]');
    await page.waitForFunction((b) => document.querySelector('main').dataset.loaded !== b, before);
    const rows = await shown();
    const want = (await api(E.TA, '/api/v1/logs?' + apiQuery)).body.items.length;
    ok(rows.length > 0 && rows.every(check) && rows.length === Math.min(want, 50),
      `logs: filter ${name}: ${rows.length} rows, every one matches, as many as the API (${want})`, rows.slice(0, 3));
    for (const [sel] of sets) {
      if (sel.startsWith('select')) await page.selectOption('#logfilters ' + sel, ''); else await page.fill('#logfilters ' + sel, '');
    }
  }
  await filter([['input[name=status]', '4xx']], (r) => /^4\d\d$/.test(r[col('status')]), 'status 4xx', 'status=4xx&limit=50');
  await filter([['input[name=provider]', 'gemini']], (r) => r[col('provider')] === 'gemini', 'provider gemini', 'provider=gemini&limit=50');
  await filter([['select[name=outcome]', 'rejected'], ['input[name=provider]', 'qwen']],
    (r) => r[col('outcome')] === 'rejected' && r[col('provider')] === 'qwen', 'outcome rejected + provider qwen', 'outcome=rejected&provider=qwen&limit=50');
  await filter([['input[name=userId]', E.U1], ['select[name=method]', 'POST']], (r) => r[col('user')] === E.U1.slice(0, 8) + '…' + E.U1.slice(-4) && r[col('request')].startsWith('POST '),
    'user + method', `userId=${E.U1}&method=POST&limit=50`);
  // paging: 10 a page, the second page is older and different
  await page.selectOption('#logfilters select[name=limit]', '50');
  const before = await page.evaluate(() => document.querySelector('main').dataset.loaded);
  await page.click('#logfilters button[type=submit]');
  await page.waitForFunction((b) => document.querySelector('main').dataset.loaded !== b, before);
  const ids = () => page.$$eval('table[aria-label="request log"] tbody tr', (rs) => rs.map((r) => [r.dataset.id, r.cells[0].firstChild.title]));
  const p1 = await ids();
  await page.click('.pager button:has-text("Older")');
  await page.waitForFunction(() => /page 2/.test(document.querySelector('.pager').textContent));
  const p2 = await ids();
  ok(p2.length > 0 && p1[p1.length - 1][1] >= p2[0][1] && !p2.some((r) => p1.some((q) => q[0] === r[0])),
    `logs: "Older" pages with the cursor (${p1.length} then ${p2.length} rows, older, none twice)`, { p1: p1.slice(-2), p2: p2.slice(0, 2) });
  await page.click('.pager button:has-text("Newer")');
  await page.waitForFunction(() => /page 1/.test(document.querySelector('.pager').textContent));
  await page.locator('table[aria-label="request log"] tbody tr').first().click();
  await page.waitForSelector('dl.kv dt:has-text("deciding limit")');
  const det = await page.textContent('dl.kv');
  ok(/tokens reserved/.test(det) && /tokens used/.test(det) && /deciding limit/.test(det), 'logs: the detail shows reserved and used tokens and the deciding limit');
  await axe('request log');
  await shot('logs');
  traffic = true;
  loop = trafficLoop();

  // ---- Analytics: usage over time, CSV through the in-memory token ------------------------------------
  await view('analytics');
  const an = await until(async () => {
    const t = await page.textContent('main dl.kv');
    return /requests\s*[1-9]/.test(t) ? t : null;
  }, 15000);
  ok(!!an, 'analytics: totals of the traffic', an);
  ok(await page.$$eval('main canvas', (c) => c.length) >= 1, 'analytics: usage over time is charted');
  const [dl] = await Promise.all([page.waitForEvent('download'), page.click('#csv')]);
  const csv = readFileSync(await dl.path(), 'utf8');
  ok(/^time,org_id,user_id,key_id,provider,model,requests/.test(csv) && csv.split('\n').length > 2,
    'analytics: "Download CSV" saves the export (fetched with the in-memory token)', csv.slice(0, 200));
  await axe('analytics');
  await shot('analytics');

  // ---- a phone, dark ---------------------------------------------------------------------------
  await page.emulateMedia({ colorScheme: 'dark' });
  await page.setViewportSize({ width: 390, height: 844 });
  await view('logs');
  await page.waitForSelector('table[aria-label="request log"] tbody tr');
  await axe('request log, phone, dark');
  await view('overview');
  await page.waitForSelector('table[aria-label="circuit breakers"] tbody tr');
  await sleep(4000); // live points for the picture
  const wide = await page.evaluate(() => document.documentElement.scrollWidth);
  ok(wide <= 392, `phone width: the page does not scroll sideways (${wide} px)`);
  await axe('overview, phone, dark');
  await page.screenshot({ path: `${E.SHOTS}/overview-phone-dark.png`, fullPage: true });
  shots.push(`${E.SHOTS}/overview-phone-dark.png`);

  await storageClean('at the end', [E.TA, E.TU, secret, E.LINK && E.LINK.split('#code=')[1]], mark);
  ok(!cspErrors.length, 'no Content-Security-Policy violation in any view', cspErrors.slice(0, 5).join('\n'));
  ok(!pageErrors.length, 'no uncaught script error in any view', pageErrors.slice(0, 5).join('\n'));
  traffic = false;
  await loop;
  await browser.close();
  console.log(`# ${sent} gateway requests sent during the test; screenshots: ${shots.map((s) => s.split('/').pop()).join(' ')}`);
}

main().then(() => process.exit(0), (e) => {
  ok(false, 'the browser test ran to its end', e && e.stack);
  process.exit(1);
});
