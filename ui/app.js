// SPDX-License-Identifier: MIT
// leaky-tokens dashboard: vanilla JS, a hash router, uPlot for the charts.
// Everything comes from the agent's REST API on the same origin. The sign-in
// token lives in the variable `token` below and nowhere else: never in the URL,
// never in localStorage, sessionStorage or a cookie (tests/ui/ui_test.mjs checks).
'use strict';
(() => {
  let token = null; // the bearer of every API call
  let me = null; // { sub, roles, admin }
  let loads = 0; // request-log pages rendered (main's data-loaded: what tests wait on)

  // ---- DOM helpers (no innerHTML: text is always text) ----------------------
  function h(tag, attrs, ...kids) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === 'class') el.className = v;
      else if (k === 'text') el.textContent = v;
      else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
      else if (k === 'value') el.value = v;
      else el.setAttribute(k, v === true ? '' : v);
    }
    for (const c of kids.flat()) {
      if (c === null || c === undefined || c === false) continue;
      el.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return el;
  }
  const clear = (el) => { while (el.firstChild) el.firstChild.remove(); return el; };
  const nf = new Intl.NumberFormat('en');
  const fmtN = (n) => (n === null || n === undefined || Number.isNaN(n) ? '–' : nf.format(n));
  const fmtR = (n) => (n === null || n === undefined || !Number.isFinite(n) ? '–' :
    n >= 100 ? nf.format(Math.round(n)) : n.toFixed(n >= 10 ? 1 : 2));
  const fmtMs = (n) => (n === null || n === undefined || !Number.isFinite(n) ? '–' :
    n >= 100 ? Math.round(n) + ' ms' : n.toFixed(1) + ' ms');
  const fmtT = (s) => (s ? String(s).replace('T', ' ').replace(/(\.\d+)?Z$/, 'Z') : '–');
  const enc = encodeURIComponent;
  // a UUID as 8…4 with the whole id in a tooltip (tables stay narrow enough for a laptop)
  const shortId = (id) => (id && /^[0-9a-f-]{36}$/.test(id) ? h('code', { title: id, text: id.slice(0, 8) + '…' + id.slice(-4) }) : h('code', { text: id || '–' }));
  const hms = (t) => (t ? h('span', { title: t, text: String(t).slice(11, 23) }) : '–');
  const isoS = (ms) => new Date(ms).toISOString().replace(/\.\d+Z$/, 'Z');

  function badge(text, kind) { return h('span', { class: 'badge b-' + kind, text }); }
  function stateBadge(st) {
    return badge(st === 'half_open' ? 'half-open' : st,
      st === 'closed' ? 'ok' : st === 'open' ? 'bad' : st === 'half_open' ? 'warn' : 'muted');
  }
  function bar(used, label) {
    const u = Math.max(0, Math.min(1, used || 0));
    const fill = h('span');
    fill.style.width = (u * 100).toFixed(1) + '%'; // CSSOM, allowed by style-src 'self'
    return h('span', { class: 'bar' + (u >= 0.9 ? ' bad' : u >= 0.7 ? ' warn' : ''),
      role: 'img', 'aria-label': label || Math.round(u * 100) + '% used' }, fill);
  }
  function spark(values, label) {
    const NS = 'http://www.w3.org/2000/svg', w = 90, hgt = 22;
    const svg = document.createElementNS(NS, 'svg');
    svg.setAttribute('class', 'spark'); svg.setAttribute('width', w); svg.setAttribute('height', hgt);
    svg.setAttribute('role', 'img'); svg.setAttribute('aria-label', label);
    const max = Math.max(1, ...values);
    const pts = values.map((v, i) =>
      ((i / Math.max(1, values.length - 1)) * (w - 2) + 1).toFixed(1) + ',' +
      (hgt - 2 - (v / max) * (hgt - 4)).toFixed(1));
    const pl = document.createElementNS(NS, 'polyline');
    pl.setAttribute('points', pts.join(' '));
    svg.append(pl);
    return svg;
  }
  function table(cols, rows, opts = {}) {
    if (!rows.length) return h('p', { class: 'empty', text: opts.empty || 'Nothing yet.' });
    const thead = h('thead', {}, h('tr', {}, cols.map((c) =>
      h('th', { scope: 'col', class: c.num ? 'num' : null, text: c.t }))));
    const tbody = h('tbody', {}, rows.map((r) => {
      const tr = h('tr', {}, cols.map((c) => {
        const v = c.f(r);
        return h('td', { class: c.num ? 'num' : null }, v instanceof Node ? v : String(v ?? '–'));
      }));
      if (r && r.id !== undefined && typeof r.id !== 'object') tr.dataset.id = r.id;
      if (opts.onrow) {
        tr.className = 'click'; tr.tabIndex = 0;
        tr.addEventListener('click', () => opts.onrow(r, tr));
        tr.addEventListener('keydown', (e) => { if (e.key === 'Enter') opts.onrow(r, tr); });
      }
      return tr;
    }));
    // focusable: a table wider than a phone scrolls inside this box, by keyboard too
    return h('div', { class: 'scroll', tabindex: 0, role: 'region', 'aria-label': (opts.label || 'table') + ' (scrolls)' },
      h('table', { 'aria-label': opts.label || null }, thead, tbody));
  }
  function panel(title, ...kids) { return h('section', { class: 'panel' }, h('h2', { text: title }), ...kids); }
  function field(label, input) { return h('label', {}, label, input); }
  function toast(msg, bad) {
    const t = document.getElementById('toast');
    clear(t).append(h('span', { class: bad ? 'err' : null, text: msg }));
    clearTimeout(toast.t);
    toast.t = setTimeout(() => clear(t), 4000);
  }
  // A destructive button that needs a second click within 4 s.
  function armed(label, confirmLabel, fn) {
    const b = h('button', { type: 'button', class: 'danger', text: label });
    let t = null;
    b.addEventListener('click', async () => {
      if (!b.classList.contains('armed')) {
        b.classList.add('armed'); b.textContent = confirmLabel;
        t = setTimeout(() => { b.classList.remove('armed'); b.textContent = label; }, 4000);
        return;
      }
      clearTimeout(t); b.disabled = true;
      try { await fn(); } catch (e) { toast(e.message, true); b.disabled = false; }
    });
    return b;
  }

  // ---- API -------------------------------------------------------------------
  class ApiError extends Error {}
  async function api(path, { method = 'GET', body, text = false } = {}) {
    const headers = {};
    if (token) headers.Authorization = 'Bearer ' + token;
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const r = await fetch(path, { method, headers, cache: 'no-store', credentials: 'omit',
      body: body === undefined ? undefined : JSON.stringify(body) });
    const raw = await r.text();
    if (!r.ok) {
      let d = null;
      try { d = JSON.parse(raw); } catch (_) { /* not JSON */ }
      const e = new ApiError((d && (d.detail || d.title)) || r.status + ' ' + r.statusText);
      e.status = r.status;
      if (r.status === 401 && token && path !== '/api/v1/auth/token') expired();
      throw e;
    }
    if (text) return raw;
    return raw ? JSON.parse(raw) : null;
  }
  const qs = (o) => Object.entries(o).filter(([, v]) => v !== '' && v !== null && v !== undefined)
    .map(([k, v]) => enc(k) + '=' + enc(v)).join('&');

  // Prometheus text: Map "name{labels}" -> value, and a reader by metric name.
  function parseProm(txt) {
    const out = [];
    for (const line of txt.split('\n')) {
      if (!line || line[0] === '#') continue;
      const sp = line.lastIndexOf(' ');
      const key = line.slice(0, sp), v = Number(line.slice(sp + 1));
      const b = key.indexOf('{');
      const name = b < 0 ? key : key.slice(0, b);
      const labels = {};
      if (b >= 0) for (const m of key.slice(b).matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[m[1]] = m[2];
      out.push({ name, labels, v });
    }
    return { all: out, get: (n) => out.filter((s) => s.name === n),
      one: (n) => { const s = out.find((x) => x.name === n); return s ? s.v : null; } };
  }
  // Quantile from cumulative histogram buckets [{le, c}] (linear within a bucket).
  function histQ(buckets, q) {
    const b = buckets.filter((x) => Number.isFinite(x.le)).sort((x, y) => x.le - y.le);
    const inf = buckets.find((x) => !Number.isFinite(x.le));
    const total = inf ? inf.c : (b.length ? b[b.length - 1].c : 0);
    if (!total) return null;
    const rank = q * total;
    let prevLe = 0, prevC = 0;
    for (const x of b) {
      if (x.c >= rank) return prevLe + (x.le - prevLe) * ((rank - prevC) / Math.max(1, x.c - prevC));
      prevLe = x.le; prevC = x.c;
    }
    return prevLe;
  }
  function quantiles(vals) {
    if (!vals.length) return [null, null, null];
    const s = [...vals].sort((a, b) => a - b);
    const at = (q) => s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)];
    return [at(0.5), at(0.95), at(0.99)];
  }
  // Bucket keys of /analytics/top (agent/api.c): u/<tier>/<provider>/<user>, o/<provider>/<org>,
  // k/<key>, r/<tier>/<key> (a key's request limit), p/<provider> (the provider pool).
  function bucketInfo(k) {
    const p = k.split('/');
    if (p[0] === 'u' && p.length === 4) return { kind: 'user', tenant: p[3], provider: p[2], tier: p[1] };
    if (p[0] === 'o' && p.length === 3) return { kind: 'org', tenant: p[2], provider: p[1], tier: 'org' };
    if (p[0] === 'k' && p.length === 2) return { kind: 'key', tenant: p[1], provider: '*', tier: '' };
    if (p[0] === 'r' && p.length === 3) return { kind: 'key requests', tenant: p[2], provider: '*', tier: p[1] };
    if (p[0] === 'p' && p.length === 2) return { kind: 'provider pool', tenant: '', provider: p[1], tier: '' };
    return { kind: '?', tenant: k, provider: '', tier: '' };
  }
  const rejected = (it) => it.outcome === 'rejected' || it.status === 429;
  const usedTokens = (it) => (it.tokens_in === null && it.tokens_out === null ?
    (rejected(it) ? 0 : it.tokens_reserved || 0) : (it.tokens_in || 0) + (it.tokens_out || 0));

  // ---- charts (uPlot) ----------------------------------------------------------
  const cssVar = (n) => getComputedStyle(document.documentElement).getPropertyValue(n).trim();
  function chart(ctx, el, labels, opts = {}) {
    const stroke = ['--s1', '--s2', '--s3', '--s4', '--s5', '--s6'].map(cssVar);
    const axis = { stroke: cssVar('--muted'), grid: { stroke: cssVar('--line'), width: 1 },
      ticks: { stroke: cssVar('--line'), width: 1 } };
    const u = new uPlot({
      width: Math.max(240, el.clientWidth || 600), height: opts.height || 200,
      scales: { x: { time: opts.time !== false } },
      axes: [{ ...axis }, { ...axis, size: 56 }],
      legend: { live: false },
      cursor: { drag: { x: false, y: false } },
      series: [{}, ...labels.map((l, i) => ({ label: l, stroke: stroke[i % stroke.length], width: 1.5,
        points: { show: opts.points || false } }))],
    }, [[], ...labels.map(() => [])], el);
    el.setAttribute('role', 'img');
    el.setAttribute('aria-label', opts.label || 'chart: ' + labels.join(', '));
    const ro = new ResizeObserver(() => u.setSize({ width: Math.max(240, el.clientWidth), height: opts.height || 200 }));
    ro.observe(el);
    ctx.onleave(() => { ro.disconnect(); u.destroy(); });
    return u;
  }

  // ---- router ------------------------------------------------------------------
  const VIEWS = [
    { id: 'overview', t: 'Overview', admin: true, r: viewOverview },
    { id: 'tenants', t: 'Tenants & quotas', admin: true, r: viewTenants },
    { id: 'keys', t: 'API keys', admin: true, r: viewKeys },
    { id: 'routes', t: 'Routes & breakers', admin: true, r: viewRoutes },
    { id: 'penalties', t: 'Penalties & policies', admin: true, r: viewPenalties },
    { id: 'usage', t: 'My usage', user: true, r: viewUsage },
    { id: 'logs', t: 'Request log', r: viewLogs },
    { id: 'analytics', t: 'Analytics', admin: true, r: viewAnalytics },
  ];
  const allowed = (v) => (v.admin ? me && me.admin : v.user ? me && !me.admin : !!me);
  let ctx = null;
  function newCtx() {
    const c = { alive: true, leave: [], timers: new Set() };
    c.onleave = (f) => c.leave.push(f);
    // fn now, then again `ms` after each run ends, while the view is shown
    c.every = (ms, fn) => {
      const run = async () => {
        if (!c.alive) return;
        try { await fn(); } catch (e) { if (c.alive && e.status !== 401) c.error && c.error(e); }
        if (c.alive) { const t = setTimeout(() => { c.timers.delete(t); run(); }, ms); c.timers.add(t); }
      };
      run();
    };
    return c;
  }
  function leave() {
    if (!ctx) return;
    ctx.alive = false;
    for (const t of ctx.timers) clearTimeout(t);
    for (const f of ctx.leave) { try { f(); } catch (_) { /* already gone */ } }
    ctx = null;
  }
  function route() {
    const hash = location.hash;
    if (hash === '#main') return;
    leave();
    const main = clear(document.getElementById('main'));
    if (!me) return viewSignIn(main);
    const id = (hash.match(/^#\/([a-z]+)/) || [])[1] || (me.admin ? 'overview' : 'usage');
    const v = VIEWS.find((x) => x.id === id);
    for (const a of document.querySelectorAll('#nav a')) {
      if (a.dataset.id === id) a.setAttribute('aria-current', 'page');
      else a.removeAttribute('aria-current');
    }
    if (!v || !allowed(v)) {
      main.append(h('h1', { text: 'Not available' }),
        h('p', { text: v ? 'This view needs the admin role; you are signed in as ' + me.sub + '.' : 'No such view.' }));
      return;
    }
    ctx = newCtx();
    document.title = v.t + ' · leaky-tokens';
    const err = h('p', { class: 'err', role: 'alert' });
    ctx.error = (e) => { err.textContent = e.message; };
    main.append(h('h1', { text: v.t }), err);
    v.r(main, ctx);
  }
  function renderNav() {
    const nav = clear(document.getElementById('nav'));
    nav.hidden = !me;
    document.getElementById('signout').hidden = !me;
    document.getElementById('who').textContent = me ? me.sub + (me.admin ? ' (admin)' : '') +
      (me.until ? ' · until ' + new Date(me.until).toTimeString().slice(0, 5) : '') : '';
    if (!me) return;
    for (const v of VIEWS.filter(allowed))
      nav.append(h('a', { href: '#/' + v.id, 'data-id': v.id, text: v.t }));
  }

  // ---- sign-in -----------------------------------------------------------------
  function b64json(part) {
    try { return JSON.parse(atob(part.replace(/-/g, '+').replace(/_/g, '/'))); } catch (_) { return {}; }
  }
  async function adopt(tok, info) {
    token = tok;
    let admin = false;
    try { await api('/api/v1/admin/providers'); admin = true; } catch (e) {
      if (e.status !== 403) { token = null; throw e; }
    }
    // when the token ends (an exchanged token says expires_in; a pasted JWT its exp claim)
    const until = info.expires_in ? Date.now() + info.expires_in * 1000 : info.exp ? info.exp * 1000 : 0;
    me = { sub: info.sub || '?', roles: info.roles || [], admin, until };
    renderNav();
    route();
  }
  async function signIn(cred) {
    cred = cred.trim();
    if (!cred) throw new Error('paste a JWT or an API key');
    let res = null;
    token = null;
    try {
      const r = await fetch('/api/v1/auth/token', { method: 'POST', cache: 'no-store', credentials: 'omit',
        headers: { Authorization: 'Bearer ' + cred } });
      if (r.ok) res = await r.json();
      else if (cred.startsWith('lk_')) {
        let d = {}; try { d = await r.json(); } catch (_) { /* no body */ }
        throw new Error(d.detail || 'the API key was refused (' + r.status + ')');
      }
    } catch (e) { if (cred.startsWith('lk_')) throw e; }
    if (res && res.access_token) return adopt(res.access_token, res);
    // a JWT the exchange did not take: use it as it is (the API verifies it on every call)
    const claims = b64json(cred.split('.')[1] || '');
    return adopt(cred, { sub: claims.sub, roles: claims.roles, exp: claims.exp });
  }
  async function signInCode(code) {
    const r = await fetch('/api/v1/auth/token', { method: 'POST', cache: 'no-store', credentials: 'omit',
      headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ signin_code: code }) });
    let d = {};
    try { d = await r.json(); } catch (_) { /* no body */ }
    if (!r.ok || !d.access_token) throw new Error(d.detail || 'the sign-in link was refused (' + r.status + '): it works once; run `leaky-agent attach` again or paste a token');
    return adopt(d.access_token, d);
  }
  function expired() {
    token = null; me = null;
    renderNav(); route();
    toast('Signed out: the token expired or was refused. Sign in again.', true);
  }
  let signinMsg = '';
  function viewSignIn(main) {
    document.title = 'Sign in · leaky-tokens';
    const ta = h('textarea', { id: 'cred', autocomplete: 'off', spellcheck: 'false',
      placeholder: 'eyJhbGciOi… or lk_…' });
    const err = h('p', { class: 'err', role: 'alert', text: signinMsg });
    const btn = h('button', { type: 'submit', text: 'Sign in' });
    const form = h('form', { class: 'panel', onsubmit: async (e) => {
      e.preventDefault(); btn.disabled = true; err.textContent = '';
      try { await signIn(ta.value); } catch (x) { err.textContent = x.message; btn.disabled = false; }
    } },
    h('h1', { text: 'Sign in' }),
    h('p', { text: 'Paste an admin JWT or an API key, or open the one-time link that `leaky-agent attach` prints. An API key is exchanged for a short-lived token (POST /api/v1/auth/token): an admin key opens every view, any other key its owner\'s own usage.' }),
    h('label', { for: 'cred' }, 'JWT or API key'), ta, err, btn,
    h('p', { class: 'note', text: 'The token stays in this tab\'s memory: a reload signs you out.' }));
    main.append(h('div', { class: 'signin' }, form));
  }

  // ---- Overview: live at 1 Hz ----------------------------------------------------
  function viewOverview(main, c) {
    const N = 120; // seconds of history in the charts
    const k = {};
    const kpi = (id, l) => (k[id] = h('div', { class: 'v', text: '–' }),
      h('div', { class: 'panel kpi' }, k[id], h('div', { class: 'l', text: l })));
    main.append(h('p', { class: 'sub', text: 'Live, once a second: the request log (gateway and consume API), /metrics and the bucket table.' }),
      h('div', { class: 'grid' }, kpi('adm', 'admitted req/s'), kpi('rej', 'rejected req/s'),
        kpi('tok', 'tokens/s'), kpi('lat', 'latency p50 / p95 / p99 (10 s)'),
        kpi('drop', 'kernel drops/s'), kpi('pen', 'penalty-box entries'), kpi('ob', 'outbox backlog')));
    const cReq = h('div', { class: 'chart' }), cTok = h('div', { class: 'chart' });
    main.append(h('div', { class: 'cols' }, panel('Requests per second', cReq), panel('Tokens per second', cTok)));
    const tRoutes = h('div'), tBrk = h('div'), tDrops = h('div'), tTop = h('div');
    main.append(h('div', { class: 'cols' }, panel('Per provider and route (last 10 s)', tRoutes),
      panel('Tenants closest to their limits', tTop)));
    main.append(h('div', { class: 'cols' }, panel('Circuit breakers', tBrk), panel('Kernel counters (XDP/TC)', tDrops)));
    const uReq = chart(c, cReq, ['admitted', 'rejected'], { label: 'requests per second, admitted and rejected' });
    const uTok = chart(c, cTok, ['tokens/s'], { label: 'tokens per second' });
    const xs = [], ad = [], rj = [], tk = [];
    const win = []; // last 10 polls: { items, dt }
    let seen = null, last = null, lastT = 0;
    c.every(1000, async () => {
      const now = Date.now() / 1000;
      const [logs, mtxt, top] = await Promise.all([
        // the last 30 s (a request is logged when it ends, with the time it arrived)
        api('/api/v1/logs?' + qs({ limit: 500, from: isoS(Date.now() - 30e3) })).catch((e) => ({ error: e })),
        api('/metrics', { text: true }), api('/api/v1/analytics/top?limit=6')]);
      if (!c.alive) return;
      const m = parseProm(mtxt);
      const dt = lastT ? Math.max(0.2, now - lastT) : 1;
      lastT = now;
      // new log rows since the last poll (newest first; ids of the previous answer)
      let fresh = [], saturated = false;
      if (!logs.error) {
        const items = logs.items || [];
        if (seen) {
          for (const it of items) { if (seen.has(it.id)) break; fresh.push(it); }
          saturated = fresh.length === items.length && items.length >= 500;
        }
        seen = new Set(items.map((it) => it.id));
      }
      win.push({ fresh, dt }); if (win.length > 10) win.shift();
      const a = fresh.filter((x) => !rejected(x)).length, r = fresh.length - a;
      const tok = fresh.reduce((s, x) => s + usedTokens(x), 0);
      xs.push(now); ad.push(a / dt); rj.push(r / dt); tk.push(tok / dt);
      if (xs.length > N) { xs.shift(); ad.shift(); rj.shift(); tk.shift(); }
      uReq.setData([xs, ad, rj]); uTok.setData([xs, tk]);
      const sat = saturated ? '≥ ' : '';
      k.adm.textContent = logs.error ? 'n/a' : sat + fmtR(a / dt);
      k.rej.textContent = logs.error ? 'n/a' : fmtR(r / dt);
      k.tok.textContent = logs.error ? 'n/a' : fmtR(tok / dt);
      const lat = quantiles(win.flatMap((w) => w.fresh.filter((x) => !rejected(x) && x.latency_ms !== null).map((x) => x.latency_ms)));
      k.lat.textContent = lat[0] === null ? '–' : lat.map((x) => fmtR(x)).join(' / ') + ' ms';
      // per provider and route over the window
      const per = new Map(), wsec = win.reduce((s, w) => s + w.dt, 0);
      for (const w of win) for (const x of w.fresh) {
        const key = (x.provider || '–') + '\u0000' + (x.route || '–');
        const e = per.get(key) || { provider: x.provider || '–', route: x.route || '–', a: 0, r: 0 };
        if (rejected(x)) e.r++; else e.a++;
        per.set(key, e);
      }
      clear(tRoutes).append(logs.error ? h('p', { class: 'empty', text: 'The request log is not available: ' + logs.error.message }) :
        table([{ t: 'provider', f: (x) => x.provider }, { t: 'route', f: (x) => x.route },
          { t: 'admitted/s', num: 1, f: (x) => fmtR(x.a / wsec) }, { t: 'rejected/s', num: 1, f: (x) => fmtR(x.r / wsec) }],
        [...per.values()].sort((p, q) => q.a + q.r - p.a - p.r).slice(0, 12), { empty: 'No requests in the last 10 s.', label: 'requests per provider and route' }));
      // kernel counters: rates against the previous scrape
      const xdp = m.get('lt_xdp_packets_total');
      const prev = last ? new Map(last.get('lt_xdp_packets_total').map((s) => [s.labels.outcome, s.v])) : new Map();
      let drops = 0;
      const rows = xdp.map((s) => {
        const rate = prev.has(s.labels.outcome) ? Math.max(0, s.v - prev.get(s.labels.outcome)) / dt : 0;
        if (s.labels.outcome.startsWith('drop')) drops += rate;
        return { o: s.labels.outcome, v: s.v, rate };
      });
      k.drop.textContent = last ? fmtR(drops) : '–';
      clear(tDrops).append(table([{ t: 'outcome', f: (x) => x.o.startsWith('drop') ? badge(x.o, x.v ? 'bad' : 'muted') : x.o },
        { t: 'packets', num: 1, f: (x) => fmtN(x.v) }, { t: 'per s', num: 1, f: (x) => fmtR(x.rate) }],
      rows.filter((x) => x.v > 0 || x.o.startsWith('drop')), { label: 'kernel counters', empty: 'No packets counted.' }));
      const pen = m.get('lt_map_entries').find((s) => s.labels.map === 'lt_penalty');
      k.pen.textContent = pen ? fmtN(pen.v) : '–';
      const obOn = m.one('lt_outbox_enabled');
      k.ob.textContent = obOn === 0 ? 'off' : fmtN(m.one('lt_outbox_backlog'));
      clear(tBrk).append(table([{ t: 'breaker', f: (x) => x.labels.name },
        { t: 'state', f: (x) => stateBadge(['closed', 'open', 'half_open'][x.v] || 'unknown') },
        { t: 'trips', num: 1, f: (x) => fmtN((m.get('lt_breaker_trips_total').find((t) => t.labels.name === x.labels.name) || {}).v) }],
      m.get('lt_breaker_state'), { label: 'circuit breakers', empty: 'No breakers.' }));
      clear(tTop).append(table([{ t: 'tenant', f: (x) => { const b = bucketInfo(x.bucket); return h('span', {}, b.kind + ' ', b.tenant ? shortId(b.tenant) : ''); } },
        { t: 'provider', f: (x) => bucketInfo(x.bucket).provider || '–' },
        { t: 'remaining', num: 1, f: (x) => fmtN(x.remaining) + ' / ' + fmtN(x.capacity) },
        { t: 'used', f: (x) => bar(x.utilization) }], top.closestToLimit || [], { label: 'tenants closest to their limits', empty: 'No bucket in use.' }));
      last = m;
    });
  }

  // ---- Tenants and quotas ------------------------------------------------------------
  function limitRow(onSave, onDelete, lim) {
    const cap = h('input', { class: 'short', type: 'number', min: 1, value: lim.capacity, 'aria-label': 'capacity (tokens)' });
    const rate = h('input', { class: 'short', value: lim.rate, 'aria-label': 'leak rate' });
    const save = h('button', { type: 'button', class: 'ghost', text: 'Save', onclick: async () => {
      save.disabled = true;
      try { await onSave({ capacity: Number(cap.value), rate: rate.value.trim() }); toast('Saved: applies to live buckets now'); } catch (e) { toast(e.message, true); }
      save.disabled = false;
    } });
    return { cap, rate, save, del: onDelete ? armed('Delete', 'Confirm', onDelete) : '' };
  }
  function viewTenants(main, c) {
    const tTop = h('div'), tTiers = h('div'), tOrg = h('div'), look = h('div');
    main.append(h('p', { class: 'sub', text: 'Budgets in use now (the 100 fullest buckets), the tier table and org quotas. A change applies live: buckets keep their level.' }));
    main.append(panel('Users, orgs and keys: remaining budget', tTop));
    // one tenant's quota
    const lkId = h('input', { class: 'mid', placeholder: 'UUID', 'aria-label': 'user or org id' });
    const lkKind = h('select', { 'aria-label': 'kind' }, h('option', { value: 'user', text: 'user' }), h('option', { value: 'org', text: 'org' }));
    const lkProv = h('select', { 'aria-label': 'provider' });
    main.append(panel('Look up a tenant', h('form', { class: 'row', onsubmit: async (e) => {
      e.preventDefault();
      const org = lkKind.value === 'org';
      try {
        const q = await api('/api/v1/tokens/quota' + (org ? '/org?orgId=' : '?userId=') + enc(lkId.value.trim()) + '&provider=' + enc(lkProv.value));
        clear(look).append(h('p', {}, bar(1 - q.remaining / q.capacity), fmtN(q.remaining) + ' of ' + fmtN(q.capacity) + ' tokens left, leaking ' + q.leakRate + ' (tier ' + q.tier + ')'));
      } catch (x) { clear(look).append(h('p', { class: 'err', text: x.message })); }
    } }, field('kind', lkKind), field('id', lkId), field('provider', lkProv), h('button', { type: 'submit', text: 'Read' })), look));
    main.append(panel('Tiers (editable; applies live)', tTiers));
    const orgId = h('input', { class: 'mid', value: 'default', 'aria-label': 'org id or default' });
    main.append(panel('Org quotas', h('form', { class: 'row', onsubmit: (e) => { e.preventDefault(); loadOrg(); } },
      field('org (UUID or "default")', orgId), h('button', { type: 'submit', text: 'Show' })), tOrg));
    let provs = [];
    api('/api/v1/admin/providers').then((p) => {
      provs = p.providers;
      for (const x of provs) lkProv.append(h('option', { value: x, text: x }));
    }).catch(c.error);
    c.every(3000, async () => {
      const top = await api('/api/v1/analytics/top?limit=100');
      if (!c.alive) return;
      clear(tTop).append(table([{ t: 'kind', f: (x) => bucketInfo(x.bucket).kind },
        { t: 'tenant', f: (x) => h('code', { text: bucketInfo(x.bucket).tenant || '–' }) },
        { t: 'provider', f: (x) => bucketInfo(x.bucket).provider || '–' },
        { t: 'tier', f: (x) => bucketInfo(x.bucket).tier || '–' },
        { t: 'remaining', num: 1, f: (x) => fmtN(x.remaining) + ' / ' + fmtN(x.capacity) },
        { t: 'budget', f: (x) => bar(x.utilization, Math.round((1 - x.utilization) * 100) + '% remaining') }],
      top.closestToLimit, { label: 'remaining budgets', empty: 'No bucket in use yet: buckets appear with the first request.' }));
    });
    async function loadTiers() {
      const t = await api('/api/v1/admin/tiers');
      const rows = [];
      for (const tier of Object.keys(t.tiers)) for (const [p, lim] of Object.entries(t.tiers[tier])) {
        const path = '/api/v1/admin/tiers/' + enc(tier) + '/' + enc(p);
        rows.push({ tier, p, ...limitRow((b) => api(path, { method: 'PUT', body: b }),
          async () => { await api(path, { method: 'DELETE' }); loadTiers(); }, lim) });
      }
      const nt = h('select', { 'aria-label': 'tier' }, Object.keys(t.tiers).map((x) => h('option', { value: x, text: x })));
      const np = h('select', { 'aria-label': 'provider' }, h('option', { value: '*', text: '* (any)' }), provs.map((x) => h('option', { value: x, text: x })));
      const nc = h('input', { class: 'short', type: 'number', min: 1, 'aria-label': 'capacity', required: true });
      const nr = h('input', { class: 'short', placeholder: '100/s', 'aria-label': 'rate', required: true });
      clear(tTiers).append(
        h('p', { class: 'note', text: 'Order: ' + t.order.join(' > ') + '; default tier ' + t.defaultTier + '. Capacity in tokens; rate N/s, N/m, N/h or N/d.' }),
        table([{ t: 'tier', f: (x) => x.tier }, { t: 'provider', f: (x) => x.p }, { t: 'capacity', f: (x) => x.cap },
          { t: 'rate', f: (x) => x.rate }, { t: '', f: (x) => h('span', {}, x.save, ' ', x.del) }], rows, { label: 'tiers' }),
        h('form', { class: 'row', onsubmit: async (e) => {
          e.preventDefault();
          try { await api('/api/v1/admin/tiers/' + enc(nt.value) + '/' + enc(np.value), { method: 'PUT', body: { capacity: Number(nc.value), rate: nr.value.trim() } }); toast('Saved'); loadTiers(); } catch (x) { toast(x.message, true); }
        } }, field('tier', nt), field('provider', np), field('capacity', nc), field('rate', nr), h('button', { type: 'submit', text: 'Set limit' })));
    }
    async function loadOrg() {
      const id = orgId.value.trim() || 'default';
      try {
        const o = await api('/api/v1/admin/orgs/' + enc(id) + '/quotas');
        const rows = Object.entries(o.providers).map(([p, lim]) => {
          const path = '/api/v1/admin/orgs/' + enc(id) + '/quotas/' + enc(p);
          return { p, ...limitRow((b) => api(path, { method: 'PUT', body: b }), async () => { await api(path, { method: 'DELETE' }); loadOrg(); }, lim) };
        });
        const np = h('select', { 'aria-label': 'provider' }, h('option', { value: '*', text: '* (any)' }), provs.map((x) => h('option', { value: x, text: x })));
        const nc = h('input', { class: 'short', type: 'number', min: 1, 'aria-label': 'capacity', required: true });
        const nr = h('input', { class: 'short', placeholder: '1000/s', 'aria-label': 'rate', required: true });
        clear(tOrg).append(table([{ t: 'provider', f: (x) => x.p }, { t: 'capacity', f: (x) => x.cap }, { t: 'rate', f: (x) => x.rate },
          { t: '', f: (x) => h('span', {}, x.save, ' ', x.del) }], rows, { label: 'org quotas', empty: 'This org has no quota of its own (it uses the default).' }),
        h('form', { class: 'row', onsubmit: async (e) => {
          e.preventDefault();
          try { await api('/api/v1/admin/orgs/' + enc(id) + '/quotas/' + enc(np.value), { method: 'PUT', body: { capacity: Number(nc.value), rate: nr.value.trim() } }); toast('Saved'); loadOrg(); } catch (x) { toast(x.message, true); }
        } }, field('provider', np), field('capacity', nc), field('rate', nr), h('button', { type: 'submit', text: 'Set quota' })));
      } catch (x) { clear(tOrg).append(h('p', { class: 'err', text: x.message })); }
    }
    setTimeout(() => { loadTiers().catch(c.error); loadOrg(); }, 0);
  }

  // ---- API keys --------------------------------------------------------------------
  function viewKeys(main, c) {
    const secretBox = h('div'), list = h('div');
    const name = h('input', { class: 'mid', required: true, 'aria-label': 'name' });
    const owner = h('input', { class: 'mid', required: true, placeholder: 'user UUID', 'aria-label': 'owner' });
    const org = h('input', { class: 'mid', placeholder: 'optional', 'aria-label': 'org id' });
    const tier = h('select', { 'aria-label': 'tier' });
    const cap = h('input', { class: 'short', type: 'number', min: 1, value: 10000, 'aria-label': 'capacity' });
    const rate = h('input', { class: 'short', value: '100/s', 'aria-label': 'rate' });
    const exp = h('input', { type: 'datetime-local', 'aria-label': 'expires at' });
    // the admin right: only an admin signed in with a JWT may grant it (the API says 403 otherwise)
    const adm = h('input', { type: 'checkbox', 'aria-label': 'admin key' });
    api('/api/v1/admin/tiers').then((t) => { for (const x of t.order) tier.append(h('option', { value: x, text: x })); }).catch(c.error);
    main.append(panel('Create a key', h('form', { class: 'row', id: 'keycreate', onsubmit: async (e) => {
      e.preventDefault();
      const body = { name: name.value.trim(), owner: owner.value.trim(), tier: tier.value,
        limits: { capacity: Number(cap.value), rate: rate.value.trim() } };
      if (org.value.trim()) body.orgId = org.value.trim();
      if (exp.value) body.expiresAt = new Date(exp.value).toISOString().replace(/\.\d+Z$/, 'Z');
      if (adm.checked) body.admin = true;
      try {
        const k = await api('/api/v1/admin/keys', { method: 'POST', body });
        const code = h('code', { id: 'secret', text: k.secret });
        const copy = h('button', { type: 'button', text: 'Copy', onclick: async () => {
          try { await navigator.clipboard.writeText(k.secret); copy.textContent = 'Copied'; } catch (_) {
            const r = document.createRange(); r.selectNodeContents(code);
            getSelection().removeAllRanges(); getSelection().addRange(r); copy.textContent = 'Selected: press Ctrl+C';
          }
        } });
        clear(secretBox).append(h('div', { class: 'secret', role: 'status' }, h('strong', { text: 'Secret of ' + k.id + ', shown once:' }), code, copy));
        name.value = ''; adm.checked = false;
        load();
      } catch (x) { toast(x.message, true); }
    } }, field('name', name), field('owner', owner), field('tier', tier), field('org (optional)', org),
    field('capacity (tokens)', cap), field('rate', rate), field('expires (optional)', exp),
    h('label', { class: 'check', title: 'The key signs in to this dashboard and the admin API as an admin' }, adm, 'admin'),
    h('button', { type: 'submit', text: 'Create key' })), secretBox));
    main.append(panel('Keys', list));
    c.onleave(() => clear(secretBox)); // the secret is gone with the view
    async function load() {
      const { keys } = await api('/api/v1/admin/keys');
      const from = new Date(Date.now() - 3600e3).toISOString().replace(/\.\d+Z$/, 'Z');
      const live = keys.filter((k) => !k.revoked).slice(0, 50);
      const usage = new Map(), series = new Map();
      await Promise.all(live.map(async (k) => {
        try { usage.set(k.id, await api('/api/v1/admin/keys/' + enc(k.id) + '/usage')); } catch (_) { /* no bucket yet */ }
        try {
          const u = await api('/api/v1/analytics/usage?' + qs({ keyId: k.id, from, step: '1m' }));
          const byT = new Map(u.points.map((p) => [Math.floor(Date.parse(p.time) / 60e3), p.requests]));
          const now = Math.floor(Date.now() / 60e3);
          series.set(k.id, Array.from({ length: 60 }, (_, i) => byT.get(now - 59 + i) || 0));
        } catch (_) { /* analytics off */ }
      }));
      if (!c.alive) return;
      const rows = keys.map((k) => ({ k, ...(k.revoked ? {} : limitRow((b) => api('/api/v1/admin/keys/' + enc(k.id), { method: 'PATCH', body: { limits: b } }), null, k.limits)) }));
      clear(list).append(table([
        { t: 'id', f: (x) => h('code', { text: x.k.id }) }, { t: 'name', f: (x) => x.k.name },
        { t: 'owner', f: (x) => shortId(x.k.owner) }, { t: 'tier', f: (x) => x.k.admin ? h('span', {}, x.k.tier, ' ', badge('admin', 'warn')) : x.k.tier },
        { t: 'capacity', f: (x) => x.cap || fmtN(x.k.limits.capacity) }, { t: 'rate', f: (x) => x.rate || x.k.limits.rate },
        { t: 'requests (1 h)', f: (x) => series.has(x.k.id) ? spark(series.get(x.k.id), 'requests per minute of ' + x.k.id) : '–' },
        { t: 'admitted / rejected', num: 1, f: (x) => usage.has(x.k.id) ? fmtN(usage.get(x.k.id).admitted) + ' / ' + fmtN(usage.get(x.k.id).rejected) : '–' },
        { t: 'remaining', num: 1, f: (x) => usage.has(x.k.id) ? fmtN(usage.get(x.k.id).remaining) : '–' },
        { t: 'state', f: (x) => x.k.revoked ? badge('revoked', 'bad') : x.k.expiresAt && Date.parse(x.k.expiresAt) < Date.now() ? badge('expired', 'warn') : badge('active', 'ok') },
        { t: '', f: (x) => x.k.revoked ? '' : h('span', {}, x.save, ' ', armed('Revoke', 'Confirm revoke', async () => {
          await api('/api/v1/admin/keys/' + enc(x.k.id), { method: 'DELETE' }); toast('Revoked ' + x.k.id); load();
        })) }], rows, { label: 'API keys', empty: 'No API keys yet.' }));
    }
    load().catch(c.error);
  }

  // ---- Routes, providers, breakers ------------------------------------------------------
  function viewRoutes(main, c) {
    const tBrk = h('div'), tProv = h('div'), tRoutes = h('div'), tUp = h('div');
    main.append(h('p', { class: 'sub', text: 'Breakers from the pinned lt_breaker map every gateway shares; upstream health from the gateways\' active health checks (the pinned lt_upstream map); latency from /metrics (GenAI histograms, since the agent started); routes as seen in the last 500 requests of the log.' }));
    main.append(panel('Circuit breakers', tBrk), panel('Upstreams (gateway health checks)', tUp),
      h('div', { class: 'cols' }, panel('Providers', tProv), panel('Routes (last 500 requests)', tRoutes)));
    c.every(2000, async () => {
      const [b, p, mtxt, logs, ups] = await Promise.all([api('/api/v1/admin/breakers'), api('/api/v1/admin/providers'),
        api('/metrics', { text: true }), api('/api/v1/logs?limit=500').catch(() => ({ items: [] })),
        api('/api/v1/admin/upstreams').catch(() => ({ upstreams: [] }))]);
      if (!c.alive) return;
      const svcBrk = (svc) => b.breakers.find((y) => y.name === 'svc:' + svc);
      clear(tUp).append(table([{ t: 'service', f: (x) => x.service }, { t: 'upstream', f: (x) => h('code', { text: x.upstream }) },
        { t: 'health', f: (x) => x.state === 'up' ? badge('up', 'ok') : x.state === 'down' ? badge('down', 'bad') : badge('stale', 'muted') },
        { t: 'check latency', num: 1, f: (x) => x.state === 'up' ? fmtMs(x.latencyMs) : '–' },
        { t: 'failed checks', num: 1, f: (x) => fmtN(x.fails) },
        { t: 'breaker', f: (x) => svcBrk(x.service) ? stateBadge(svcBrk(x.service).state) : '–' },
        { t: 'since', f: (x) => fmtT(x.changedAt) }, { t: 'last check', f: (x) => fmtT(x.checkedAt) },
        { t: 'last error', f: (x) => x.lastError || '–' }],
      ups.upstreams.slice().sort((x, y) => (x.service + x.upstream).localeCompare(y.service + y.upstream)),
      { label: 'upstreams', empty: 'No health checks published: no gateway checks a service (services.NAME.health), or none runs.' }));
      const m = parseProm(mtxt);
      clear(tBrk).append(table([{ t: 'name', f: (x) => x.name }, { t: 'state', f: (x) => stateBadge(x.state) },
        { t: 'failures', num: 1, f: (x) => fmtN(x.failures) }, { t: 'trips', num: 1, f: (x) => fmtN(x.trips) },
        { t: 'denied', num: 1, f: (x) => fmtN(x.denied) }, { t: 'last cause', f: (x) => x.lastCause || '–' },
        { t: 'until', f: (x) => fmtT(x.until) },
        { t: '', f: (x) => h('button', { type: 'button', class: 'ghost', 'data-breaker': x.name, disabled: x.state === 'closed' && !x.failures, text: 'Reset', onclick: async (e) => {
          e.target.disabled = true;
          try { await api('/api/v1/admin/breakers/' + enc(x.name) + '/reset', { method: 'POST' }); toast('Breaker ' + x.name + ' closed'); } catch (er) { toast(er.message, true); }
        } }) }], b.breakers, { label: 'circuit breakers', empty: 'No breakers.' }));
      const hist = (name, prov) => m.get(name + '_bucket').filter((s) => s.labels.gen_ai_provider_name === prov)
        .map((s) => ({ le: s.labels.le === '+Inf' ? Infinity : Number(s.labels.le), c: s.v }));
      const items = logs.items || [];
      clear(tProv).append(table([{ t: 'provider', f: (x) => x },
        { t: 'health', f: (x) => {
          const br = b.breakers.find((y) => y.name === x);
          const recent = items.filter((i) => i.provider === x && !rejected(i));
          const bad = recent.filter((i) => i.status >= 500).length;
          if (br && br.state === 'open') return badge('down (breaker open)', 'bad');
          if ((br && br.state === 'half_open') || (recent.length && bad / recent.length > 0.2)) return badge('degraded', 'warn');
          return recent.length || br ? badge('ok', 'ok') : badge('no traffic', 'muted');
        } },
        { t: 'requests', num: 1, f: (x) => fmtN((m.get('gen_ai_server_request_duration_count').find((s) => s.labels.gen_ai_provider_name === x) || {}).v || 0) },
        { t: 'p50', num: 1, f: (x) => fmtMs(1000 * histQ(hist('gen_ai_server_request_duration', x), 0.5)) },
        { t: 'p95', num: 1, f: (x) => fmtMs(1000 * histQ(hist('gen_ai_server_request_duration', x), 0.95)) },
        { t: 'p99', num: 1, f: (x) => fmtMs(1000 * histQ(hist('gen_ai_server_request_duration', x), 0.99)) },
        { t: 'TTFT p50', num: 1, f: (x) => fmtMs(1000 * histQ(hist('gen_ai_server_time_to_first_token', x), 0.5)) }],
      p.providers, { label: 'providers' }));
      const per = new Map();
      for (const i of items) {
        const key = i.route || '–';
        const e = per.get(key) || { route: key, n: 0, s2: 0, s4: 0, s5: 0, lat: [] };
        e.n++;
        if (i.status >= 500) e.s5++; else if (i.status >= 400) e.s4++; else e.s2++;
        if (i.latency_ms !== null && !rejected(i)) e.lat.push(i.latency_ms);
        per.set(key, e);
      }
      clear(tRoutes).append(table([{ t: 'route', f: (x) => x.route }, { t: 'requests', num: 1, f: (x) => fmtN(x.n) },
        { t: '2xx', num: 1, f: (x) => fmtN(x.s2) }, { t: '4xx', num: 1, f: (x) => fmtN(x.s4) }, { t: '5xx', num: 1, f: (x) => fmtN(x.s5) },
        { t: 'p50', num: 1, f: (x) => fmtMs(quantiles(x.lat)[0]) }, { t: 'p95', num: 1, f: (x) => fmtMs(quantiles(x.lat)[1]) }],
      [...per.values()].sort((x, y) => y.n - x.n), { label: 'routes', empty: 'No requests in the log yet.' }));
    });
  }

  // ---- Penalties and source policies -----------------------------------------------------
  function viewPenalties(main, c) {
    const tPen = h('div'), tPol = h('div'), tK = h('div');
    const pfx = h('input', { class: 'mid', placeholder: '192.0.2.0/24', required: true, 'aria-label': 'prefix' });
    const dur = h('input', { class: 'short', value: '1h', 'aria-label': 'duration' });
    const why = h('select', { 'aria-label': 'reason' }, ['manual', 'abuse', 'auth'].map((x) => h('option', { value: x, text: x })));
    main.append(h('p', { class: 'sub', text: 'Bans are the kernel\'s penalty box (the pinned lt_penalty map that XDP reads); policies are the per-source buckets of lt_policy.' }));
    main.append(panel('Ban a source', h('form', { class: 'row', id: 'banform', onsubmit: async (e) => {
      e.preventDefault();
      try { await api('/api/v1/admin/penalties', { method: 'POST', body: { prefix: pfx.value.trim(), duration: dur.value.trim(), reason: why.value } }); toast('Banned ' + pfx.value); pfx.value = ''; refresh(); } catch (x) { toast(x.message, true); }
    } }, field('prefix', pfx), field('for', dur), field('reason', why), h('button', { type: 'submit', text: 'Ban' }))));
    main.append(h('div', { class: 'cols' }, panel('Penalty box (kernel)', tPen), panel('Kernel drops', tK)));
    const pp = h('input', { class: 'mid', placeholder: '10.0.0.0/8', required: true, 'aria-label': 'policy prefix' });
    const pc = h('input', { class: 'short', placeholder: '5', 'aria-label': 'connections capacity' });
    const pr = h('input', { class: 'short', placeholder: '1/m', 'aria-label': 'connections rate' });
    const pallow = h('select', { 'aria-label': 'kind' }, h('option', { value: 'limit', text: 'limit connections' }), h('option', { value: 'unlimited', text: 'unlimited' }));
    main.append(panel('Source policies', h('form', { class: 'row', onsubmit: async (e) => {
      e.preventDefault();
      const body = { connections: pallow.value === 'unlimited' ? 'unlimited' : { capacity: Number(pc.value), rate: pr.value.trim() } };
      try { await api('/api/v1/admin/policies?prefix=' + enc(pp.value.trim()), { method: 'PUT', body }); toast('Policy set'); refresh(); } catch (x) { toast(x.message, true); }
    } }, field('prefix', pp), field('kind', pallow), field('capacity', pc), field('rate', pr), h('button', { type: 'submit', text: 'Set policy' })), tPol));
    const rate = (x) => (x === 'unlimited' || !x ? String(x || '–') : fmtN(x.capacity) + ', ' + x.rate);
    async function refresh() {
      const [p, q, mtxt] = await Promise.all([api('/api/v1/admin/penalties'), api('/api/v1/admin/policies'), api('/metrics', { text: true })]);
      if (!c.alive) return;
      const m = parseProm(mtxt);
      clear(tPen).append(table([{ t: 'prefix', f: (x) => h('code', { text: x.prefix }) }, { t: 'reason', f: (x) => x.reason },
        { t: 'strikes', num: 1, f: (x) => fmtN(x.strikes) }, { t: 'until', f: (x) => x.expiresAt ? fmtT(x.expiresAt) : 'unbanned' },
        { t: '', f: (x) => armed('Unban', 'Confirm unban', async () => {
          await api('/api/v1/admin/penalties?prefix=' + enc(x.prefix), { method: 'DELETE' }); toast('Unbanned ' + x.prefix); refresh();
        }) }], p.penalties, { label: 'penalty box', empty: 'Nobody is banned.' }));
      clear(tK).append(table([{ t: 'counter', f: (x) => x.labels.outcome || x.labels.map }, { t: 'value', num: 1, f: (x) => fmtN(x.v) }],
        [...m.get('lt_xdp_packets_total').filter((s) => s.labels.outcome.startsWith('drop')),
          ...m.get('lt_map_entries').filter((s) => s.labels.map === 'lt_penalty' || s.labels.map === 'lt_policy')],
        { label: 'kernel drops' }));
      clear(tPol).append(table([{ t: 'prefix', f: (x) => h('code', { text: x.prefix }) },
        { t: 'allowlist', f: (x) => x.allow ? badge('allow', 'ok') : '–' },
        { t: 'connections', f: (x) => rate(x.connections) }, { t: 'packets', f: (x) => rate(x.packets) },
        { t: 'aggregate v4/v6', f: (x) => '/' + x.aggregateV4 + ' /' + x.aggregateV6 },
        { t: '', f: (x) => armed('Remove', 'Confirm', async () => {
          await api('/api/v1/admin/policies?prefix=' + enc(x.prefix), { method: 'DELETE' }); refresh();
        }) }], q.policies, { label: 'source policies', empty: 'No source policy: the default applies.' }));
    }
    c.every(3000, refresh);
  }

  // ---- Request log -------------------------------------------------------------------------
  const LOG_COLS = [
    { t: 'time (UTC)', f: (x) => hms(x.time) }, { t: 'request', f: (x) => (x.method || '') + ' ' + (x.route || '–') },
    { t: 'status', f: (x) => badge(String(x.status), x.status >= 500 ? 'bad' : x.status >= 400 ? 'warn' : 'ok') },
    { t: 'outcome', f: (x) => x.outcome }, { t: 'provider', f: (x) => x.provider || '–' },
    { t: 'model', f: (x) => x.model || '–' }, { t: 'user', f: (x) => shortId(x.user_id) },
    { t: 'key', f: (x) => x.key_id || '–' },
    // reserved -> charged: the usage when reported, else the reservation (0 when refused)
    { t: 'tokens', num: 1, f: (x) => fmtN(x.tokens_reserved) + ' → ' + fmtN(usedTokens(x)) },
    { t: 'latency', num: 1, f: (x) => fmtMs(x.latency_ms) },
  ];
  function renderLimit(l) {
    if (l === null || l === undefined || l === '') return '–';
    if (typeof l !== 'object') return String(l);
    return Object.entries(l).map(([k, v]) => k + ': ' + (typeof v === 'object' ? JSON.stringify(v) : v)).join(', ');
  }
  function logDetail(box, it) {
    clear(box).append(h('h2', { text: 'Request ' + it.id }), h('dl', { class: 'kv' },
      ...[['time', fmtT(it.time)], ['request id', it.request_id], ['source', it.source], ['client', it.client],
        ['method / route', it.method + ' ' + it.route], ['status / outcome', it.status + ' / ' + it.outcome],
        ['provider / model', (it.provider || '–') + ' / ' + (it.model || '–')],
        ['user / org', (it.user_id || '–') + ' / ' + (it.org_id || '–')], ['tier', it.tier], ['API key', it.key_id || '–'],
        ['tokens reserved', fmtN(it.tokens_reserved)],
        ['tokens used (in + out)', it.tokens_in === null && it.tokens_out === null ? 'not reported' : fmtN(it.tokens_in) + ' + ' + fmtN(it.tokens_out)],
        ['latency / TTFT', fmtMs(it.latency_ms) + ' / ' + fmtMs(it.ttft_ms)],
        ['deciding limit', it.limit ? renderLimit(it.limit) : it.status < 400 ? 'none: admitted within every limit' : 'none: refused before admission']]
        .flatMap(([k, v]) => [h('dt', { text: k }), h('dd', { text: v ?? '–' })])));
  }
  function viewLogs(main, c) {
    const f = {};
    const inp = (name, label, attrs = {}) => (f[name] = h('input', { class: 'short', name, 'aria-label': label, ...attrs }), field(label, f[name]));
    const sel = (name, label, opts) => (f[name] = h('select', { name, 'aria-label': label }, opts.map((o) => h('option', { value: o, text: o || 'any' }))), field(label, f[name]));
    const tbl = h('div'), det = h('section', { class: 'panel', 'aria-live': 'polite' }, h('p', { class: 'note', text: 'Select a row for its detail: reserved and used tokens, and the limit that decided.' }));
    const info = h('span', { class: 'note' });
    const prev = h('button', { type: 'button', class: 'ghost', text: '← Newer', disabled: true });
    const next = h('button', { type: 'button', class: 'ghost', text: 'Older →', disabled: true });
    const form = h('form', { class: 'row', id: 'logfilters', onsubmit: (e) => { e.preventDefault(); stack = []; load(null); } },
      sel('method', 'method', ['', 'GET', 'POST', 'PUT', 'DELETE']), inp('status', 'status', { placeholder: '429, 4xx' }),
      inp('provider', 'provider'), inp('route', 'route'),
      ...(me.admin ? [inp('userId', 'user', { class: 'mid' }), inp('orgId', 'org', { class: 'mid' })] : []),
      inp('keyId', 'key'), sel('outcome', 'outcome', ['', 'completed', 'rejected', 'client_gone', 'upstream_failed', 'timed_out', 'cut']),
      inp('from', 'from (UTC)', { type: 'datetime-local', step: 1 }), inp('to', 'to (UTC)', { type: 'datetime-local', step: 1 }),
      sel('limit', 'rows', ['50', '100', '200', '500']), h('button', { type: 'submit', text: 'Apply' }));
    main.append(panel('Filters', form), h('div', { class: 'logwrap' },
      h('div', { class: 'panel' }, tbl, h('div', { class: 'pager' }, prev, next, info)), det));
    let stack = [], cur = null, nextCur = null;
    const utc = (v) => (v ? v + (v.length === 16 ? ':00' : '') + 'Z' : '');
    async function load(cursor) {
      const q = {};
      for (const [k, el] of Object.entries(f)) q[k] = k === 'from' || k === 'to' ? utc(el.value) : el.value.trim();
      if (cursor) q.cursor = cursor;
      const t0 = performance.now();
      const r = await api('/api/v1/logs?' + qs(q));
      if (!c.alive) return;
      cur = cursor; nextCur = r.next_cursor;
      clear(tbl).append(table(LOG_COLS, r.items, { label: 'request log', empty: 'No request matches.',
        onrow: (it, tr) => {
          for (const x of tbl.querySelectorAll('tr.sel')) x.classList.remove('sel');
          tr.classList.add('sel');
          api('/api/v1/logs/' + enc(it.id)).then((d) => logDetail(det, d)).catch((e) => logDetail(det, { ...it, limit: 'detail failed: ' + e.message }));
        } }));
      prev.disabled = !stack.length; next.disabled = !nextCur;
      info.textContent = r.items.length + ' rows, page ' + (stack.length + 1) + ' (' + Math.round(performance.now() - t0) + ' ms)';
      main.dataset.loaded = String(++loads); // tests and the bench wait for this to change
    }
    next.addEventListener('click', () => { stack.push(cur); load(nextCur).catch(c.error); });
    prev.addEventListener('click', () => { load(stack.pop()).catch(c.error); });
    load(null).catch(c.error);
  }

  // ---- Analytics ----------------------------------------------------------------------------------
  function parseCsv(txt) {
    const rows = []; let row = [], cell = '', q = false;
    for (let i = 0; i < txt.length; i++) {
      const ch = txt[i];
      if (q) { if (ch === '"') { if (txt[i + 1] === '"') { cell += '"'; i++; } else q = false; } else cell += ch; } else if (ch === '"') q = true;
      else if (ch === ',') { row.push(cell); cell = ''; } else if (ch === '\n') { row.push(cell.replace(/\r$/, '')); rows.push(row); row = []; cell = ''; } else cell += ch;
    }
    if (cell || row.length) { row.push(cell); rows.push(row); }
    const head = rows.shift() || [];
    return rows.filter((r) => r.length === head.length).map((r) => Object.fromEntries(head.map((k, i) => [k, r[i]])));
  }
  function viewAnalytics(main, c) {
    const range = h('select', { 'aria-label': 'range' }, [['1h', 3600, '1m'], ['6h', 21600, '5m'], ['24h', 86400, '15m'], ['7d', 604800, '1h'], ['30d', 2592000, '1d']]
      .map(([t, s, st]) => h('option', { value: s + '|' + st, text: 'last ' + t })));
    const by = h('select', { 'aria-label': 'group by' }, [['provider', 'provider'], ['tenant', 'tenant (org, else user)'], ['model', 'model'], ['key_id', 'API key']].map(([v, t]) => h('option', { value: v, text: t })));
    const what = h('select', { 'aria-label': 'measure' }, [['tokens_settled', 'tokens charged'], ['requests', 'requests'], ['rejected', 'rejected'], ['input_tokens', 'input tokens'], ['output_tokens', 'output tokens']].map(([v, t]) => h('option', { value: v, text: t })));
    const fl = { orgId: h('input', { class: 'mid', 'aria-label': 'org filter' }), userId: h('input', { class: 'mid', 'aria-label': 'user filter' }),
      provider: h('input', { class: 'short', 'aria-label': 'provider filter' }), model: h('input', { class: 'short', 'aria-label': 'model filter' }) };
    const dl = h('button', { type: 'button', class: 'ghost', id: 'csv', text: 'Download CSV' });
    const cbox = h('div', { class: 'chart' }), tot = h('div'), grp = h('div');
    main.append(h('p', { class: 'sub', text: 'Per-minute rollups (compacted to hours and days with age), from /api/v1/analytics/usage.csv; the download is that export with the same filters.' }),
      panel('Query', h('form', { class: 'row', onsubmit: (e) => { e.preventDefault(); load().catch(c.error); } },
        field('range', range), field('group by', by), field('measure', what), field('org', fl.orgId), field('user', fl.userId),
        field('provider', fl.provider), field('model', fl.model), h('button', { type: 'submit', text: 'Show' }), dl)),
      panel('Over time', cbox), h('div', { class: 'cols' }, panel('Totals', tot), panel('By group', grp)));
    let u = null;
    function params() {
      const [secs, step] = range.value.split('|');
      const to = new Date(Math.ceil(Date.now() / 60e3) * 60e3);
      const q = { from: new Date(to - secs * 1000).toISOString().replace(/\.\d+Z$/, 'Z'), to: to.toISOString().replace(/\.\d+Z$/, 'Z'), step };
      for (const [k, el] of Object.entries(fl)) q[k] = el.value.trim();
      return q;
    }
    dl.addEventListener('click', async () => {
      try {
        const txt = await api('/api/v1/analytics/usage.csv?' + qs(params()), { text: true });
        const url = URL.createObjectURL(new Blob([txt], { type: 'text/csv' }));
        const a = h('a', { href: url, download: 'leaky-tokens-usage.csv' });
        document.body.append(a); a.click(); a.remove();
        setTimeout(() => URL.revokeObjectURL(url), 10000);
      } catch (e) { toast(e.message, true); }
    });
    async function load() {
      const q = params();
      const [csv, sum] = await Promise.all([api('/api/v1/analytics/usage.csv?' + qs(q), { text: true }), api('/api/v1/analytics/usage?' + qs(q))]);
      if (!c.alive) return;
      const rows = parseCsv(csv), key = by.value, m = what.value;
      const gkey = (r) => (key === 'tenant' ? (r.org_id ? 'org ' + r.org_id : r.user_id ? 'user ' + r.user_id : 'anonymous') : r[key] || '–');
      const totals = new Map();
      for (const r of rows) totals.set(gkey(r), (totals.get(gkey(r)) || 0) + Number(r[m] || 0));
      const groups = [...totals.entries()].sort((a, b) => b[1] - a[1]);
      const top = groups.slice(0, 6).map((g) => g[0]);
      // one point per step of the whole range, zero where nothing happened
      const f0 = Date.parse(q.from) / 1000, t0 = Date.parse(q.to) / 1000;
      const st = { m: 60, h: 3600, d: 86400 }[q.step.slice(-1)] * parseInt(q.step, 10);
      const xs = [];
      for (let t = f0; t < t0; t += st) xs.push(t);
      const ys = top.map(() => xs.map(() => 0));
      for (const r of rows) {
        const gi = top.indexOf(gkey(r)), i = Math.floor((Date.parse(r.time) / 1000 - f0) / st);
        if (gi >= 0 && i >= 0 && i < xs.length) ys[gi][i] += Number(r[m] || 0);
      }
      if (u) { u.destroy(); u = null; }
      clear(cbox);
      if (rows.length) {
        u = chart(c, cbox, top, { label: what.selectedOptions[0].text + ' over time by ' + by.value });
        u.setData([xs, ...ys]);
      } else cbox.append(h('p', { class: 'empty', text: 'No traffic in this range.' }));
      const t = sum.total || {};
      clear(tot).append(h('dl', { class: 'kv' }, ...[['requests', fmtN(t.requests)], ['admitted / rejected', fmtN(t.admitted) + ' / ' + fmtN(t.rejected)],
        ['input / output tokens', fmtN(t.inputTokens) + ' / ' + fmtN(t.outputTokens)], ['tokens charged', fmtN(t.tokensSettled)],
        ['latency p50 / p95 / p99', t.latencyMs ? [t.latencyMs.p50, t.latencyMs.p95, t.latencyMs.p99].map(fmtMs).join(' / ') : '–']]
        .flatMap(([k, v]) => [h('dt', { text: k }), h('dd', { text: v })])));
      clear(grp).append(table([{ t: by.selectedOptions[0].text, f: (x) => x[0] }, { t: what.selectedOptions[0].text, num: 1, f: (x) => fmtN(x[1]) }],
        groups.slice(0, 50), { label: 'usage by group', empty: 'No traffic in this range.' }));
    }
    load().catch(c.error);
  }

  // ---- My usage (non-admin) --------------------------------------------------------------------
  function viewUsage(main, c) {
    const q = h('div'), recent = h('div');
    main.append(h('p', { class: 'sub', text: 'Signed in as ' + me.sub + ': your own budgets and requests. Admin views need the admin role.' }),
      panel('Your budgets', q), panel('Your latest requests', recent));
    const provs = new Set(), orgs = new Set();
    c.every(3000, async () => {
      let items = [];
      try { items = (await api('/api/v1/logs?limit=50')).items; } catch (e) { if (e.status !== 404) throw e; }
      for (const i of items) {
        if (i.provider) provs.add(i.provider);
        if (i.org_id) orgs.add(i.org_id);
      }
      if (!provs.size) provs.add('openai');
      const rows = [];
      for (const p of provs) {
        try { rows.push({ who: 'you', p, ...(await api('/api/v1/tokens/quota?' + qs({ userId: me.sub, provider: p }))) }); } catch (e) { rows.push({ who: 'you', p, error: e.message }); }
        for (const o of orgs) {
          try { rows.push({ who: 'org ' + o, p, ...(await api('/api/v1/tokens/quota/org?' + qs({ orgId: o, provider: p }))) }); } catch (e) { /* not one of its orgs */ }
        }
      }
      if (!c.alive) return;
      clear(q).append(table([{ t: 'budget of', f: (x) => x.who === 'you' ? 'you' : h('span', {}, 'org ', shortId(x.who.slice(4))) },
        { t: 'provider', f: (x) => x.p }, { t: 'tier', f: (x) => x.tier || '–' },
        { t: 'remaining', num: 1, f: (x) => x.error ? x.error : fmtN(x.remaining) + ' / ' + fmtN(x.capacity) },
        { t: 'budget', f: (x) => x.error ? '–' : bar(1 - x.remaining / x.capacity, Math.round(100 * x.remaining / x.capacity) + '% remaining') },
        { t: 'refill', f: (x) => x.leakRate || '–' }], rows, { label: 'your budgets' }));
      clear(recent).append(table(LOG_COLS, items, { label: 'your requests', empty: 'No requests yet.' }));
    });
  }

  // ---- boot -------------------------------------------------------------------------------------
  document.getElementById('signout').addEventListener('click', () => {
    token = null; me = null; signinMsg = '';
    history.replaceState(null, '', location.pathname);
    renderNav(); route();
  });
  window.addEventListener('hashchange', () => { if (!takeCode()) route(); });
  document.querySelector('.skip').addEventListener('click', (e) => { e.preventDefault(); document.getElementById('main').focus(); });
  // The one-time link: #code=<code>. Taken out of the address bar before anything else runs
  // (history.replaceState: no history entry keeps it), then exchanged once.
  // (also when the link is opened in a tab that shows the dashboard: only the hash changes).
  function takeCode() {
    const m = location.hash.match(/^#code=([^&]+)/);
    if (!m) return false;
    history.replaceState(null, '', location.pathname);
    leave();
    token = null; me = null; renderNav();
    clear(document.getElementById('main')).append(h('p', { text: 'Signing in with the one-time link…' }));
    signInCode(decodeURIComponent(m[1])).catch((e) => { signinMsg = e.message; renderNav(); route(); });
    return true;
  }
  if (!takeCode()) { renderNav(); route(); }
})();
