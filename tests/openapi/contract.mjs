// contract.mjs - drives a live agent through every operation of docs/openapi.yaml and checks
// that each documented status code is answered, with a body that the documented schema accepts
// (required fields, types, formats), in one JSON style: camelCase keys, RFC 3339 times,
// and what you PUT is what you GET. Prints "ok - ..." / "not ok - ..." lines (tests/e2e/
// test_openapi.sh numbers them as TAP).
// Environment: BASE (http://127.0.0.1:PORT), T_USER (USER token for U1 in org O1), T_ADMIN.
import SwaggerParser from '@apidevtools/swagger-parser';
import Ajv from 'ajv';
import addFormats from 'ajv-formats';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';

const spec = await SwaggerParser.validate(process.argv[2]);
const ajv = new Ajv({ strict: false, allErrors: true });
addFormats(ajv);
const { BASE, T_USER, T_ADMIN } = process.env;
const U1 = '00000000-0000-0000-0000-000000000001';
const U2 = '00000000-0000-0000-0000-000000000002';
const O1 = '10000000-0000-0000-0000-000000000001';
const O2 = '10000000-0000-0000-0000-000000000002';
let failed = 0;
const ok = (name) => console.log(`ok - ${name}`);
const notok = (name, why) => {
	failed++;
	console.log(`not ok - ${name}`);
	for (const l of String(why).split('\n').slice(0, 8)) console.log(`# ${l}`);
};

const METHODS = ['get', 'put', 'post', 'patch', 'delete'];
const covered = new Set(); // "METHOD template STATUS"

async function call(method, url, auth, body) {
	const headers = {};
	if (auth) headers.Authorization = `Bearer ${auth}`;
	if (body !== undefined) headers['Content-Type'] = 'application/json';
	const res = await fetch(BASE + url, {
		method,
		headers,
		body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
	});
	const text = await res.text();
	let json;
	try {
		json = JSON.parse(text);
	} catch {
		json = undefined;
	}
	return { status: res.status, ctype: res.headers.get('content-type') || '', text, json, headers: res.headers };
}

// keys of a JSON value that are not camelCase (map keys under tiers/providers are names)
function badKeys(v, path = '') {
	if (Array.isArray(v)) return v.flatMap((x, i) => badKeys(x, `${path}/${i}`));
	if (!v || typeof v !== 'object') return [];
	return Object.entries(v).flatMap(([k, x]) => {
		if (k === 'tiers' && x && typeof x === 'object' && !Array.isArray(x))
			return Object.values(x).flatMap((y) => badKeys({ providers: y }, `${path}/${k}/*`));
		if (k === 'providers' && x && typeof x === 'object' && !Array.isArray(x))
			return Object.values(x).flatMap((y) => badKeys(y, `${path}/${k}/*`));
		return (/^[a-z][A-Za-z0-9]*$/.test(k) ? [] : [`${path}/${k}`]).concat(badKeys(x, `${path}/${k}`));
	});
}

// the dashboard's resources (issue #11) answer in snake_case, as their contract says
const SNAKE = ['/api/v1/logs', '/api/v1/auth/'];
function snakeBadKeys(v, path = '') {
	if (Array.isArray(v)) return v.flatMap((x, i) => snakeBadKeys(x, `${path}/${i}`));
	if (!v || typeof v !== 'object') return [];
	return Object.entries(v).flatMap(([k, x]) =>
		(/^[a-z][a-z0-9_]*$/.test(k) ? [] : [`${path}/${k}`]).concat(snakeBadKeys(x, `${path}/${k}`)));
}

// one request against an operation; checks status, content type, schema and style
async function op(name, method, tmpl, url, auth, body, want) {
	const r = await call(method.toUpperCase(), url, auth, body);
	const doc = spec.paths[tmpl]?.[method]?.responses?.[String(want)];
	const label = `${method.toUpperCase()} ${tmpl} -> ${want}: ${name}`;
	try {
		assert.ok(doc, `status ${want} is not documented for ${method} ${tmpl}`);
		assert.equal(r.status, want, `got ${r.status}: ${r.text.slice(0, 300)}`);
		const [ctype, media] = Object.entries(doc.content || {})[0] || [];
		if (ctype) {
			assert.ok(r.ctype.startsWith(ctype), `Content-Type ${r.ctype}, documented ${ctype}`);
			if (media.schema && ctype.includes('json')) {
				const v = ajv.compile(media.schema);
				assert.ok(v(r.json), `body does not match the schema: ${ajv.errorsText(v.errors)}\n${r.text.slice(0, 300)}`);
			}
		}
		if (r.json && r.status < 300 && SNAKE.some((p) => tmpl.startsWith(p))) {
			const bad = snakeBadKeys(r.json);
			assert.equal(bad.length, 0, `not snake_case: ${bad.join(', ')}`);
		} else if (r.json && r.status < 300) {
			const bad = badKeys(r.json);
			assert.equal(bad.length, 0, `not camelCase: ${bad.join(', ')}`);
		}
		for (const h of Object.keys(doc.headers || {}))
			assert.ok(r.headers.get(h) !== null, `documented header ${h} is missing`);
		covered.add(`${method} ${tmpl} ${want}`);
		ok(label);
	} catch (e) {
		notok(label, e.message);
	}
	return r;
}

function same(name, a, b) {
	try {
		assert.deepEqual(a, b);
		ok(name);
	} catch (e) {
		notok(name, e.message);
	}
}

const C = '/api/v1/tokens/consume';
const consume = (tokens, user = U1, extra = {}) => ({ userId: user, provider: 'gemini', tokens, ...extra });

// ---- token API
await op('admitted', 'post', C, C, T_USER, consume(1), 200);
await op('malformed', 'post', C, C, T_USER, '{"userId":', 400);
await op('for another user', 'post', C, C, T_USER, consume(1, U2), 403);
await op('body over max_body', 'post', C, C, T_USER, { ...consume(1), pad: 'x'.repeat(20000) }, 413);
await op('more than the capacity', 'post', C, C, T_USER, consume(20000), 422);
await op('empties the pool', 'post', C, C, T_USER, consume(9999), 200);
await op('pool empty', 'post', C, C, T_USER, consume(5000), 429);
for (const [t, q] of [['/api/v1/tokens/quota', `userId=${U1}`], ['/api/v1/tokens/quota/org', `orgId=${O1}`]]) {
	await op('read', 'get', t, `${t}?${q}&provider=gemini`, T_USER, undefined, 200);
	await op('unknown provider', 'get', t, `${t}?${q}&provider=nope`, T_USER, undefined, 400);
	await op('someone else', 'get', t, `${t}?${q.replace(/1$/, '2')}&provider=gemini`, T_USER, undefined, 403);
}

// ---- tiers and org quotas: what you PUT is what you GET
const A = '/api/v1/admin';
await op('list', 'get', `${A}/tiers`, `${A}/tiers`, T_ADMIN, undefined, 200);
await op('read', 'get', `${A}/tiers/{tier}`, `${A}/tiers/USER`, T_ADMIN, undefined, 200);
await op('unknown tier', 'get', `${A}/tiers/{tier}`, `${A}/tiers/NOPE`, T_ADMIN, undefined, 404);
const TP = `${A}/tiers/{tier}/{provider}`;
const lim = { capacity: 700, rate: '7/s' };
let put = await op('set', 'put', TP, `${A}/tiers/USER/qwen`, T_ADMIN, lim, 200);
let got = await op('read', 'get', TP, `${A}/tiers/USER/qwen`, T_ADMIN, undefined, 200);
same('tier limit: PUT body = PUT response = GET', [lim, put.json], [got.json, got.json]);
got = await op('canonical rate', 'put', TP, `${A}/tiers/USER/qwen`, T_ADMIN, { capacity: 700, rate: '420/m' }, 200);
same('tier limit: "420/m" reads back as "7/s"', got.json, lim);
await op('bad rate', 'put', TP, `${A}/tiers/USER/qwen`, T_ADMIN, { capacity: 1, rate: 'fast' }, 400);
await op('old alias leakRate is not accepted', 'put', TP, `${A}/tiers/USER/qwen`, T_ADMIN, { capacity: 1, leakRate: '1/s' }, 400);
await op('unknown provider', 'get', TP, `${A}/tiers/USER/nope`, T_ADMIN, undefined, 400);
await op('delete', 'delete', TP, `${A}/tiers/USER/qwen`, T_ADMIN, undefined, 200);
await op('gone', 'get', TP, `${A}/tiers/USER/qwen`, T_ADMIN, undefined, 404);
await op('delete again', 'delete', TP, `${A}/tiers/USER/qwen`, T_ADMIN, undefined, 404);
const OQ = `${A}/orgs/{orgId}/quotas`, OQP = `${OQ}/{provider}`;
await op('read', 'get', OQ, `${A}/orgs/default/quotas`, T_ADMIN, undefined, 200);
put = await op('set', 'put', OQP, `${A}/orgs/${O2}/quotas/qwen`, T_ADMIN, lim, 200);
got = await op('read', 'get', OQP, `${A}/orgs/${O2}/quotas/qwen`, T_ADMIN, undefined, 200);
same('org quota: PUT response = GET', put.json, got.json);
await op('bad capacity', 'put', OQP, `${A}/orgs/${O2}/quotas/qwen`, T_ADMIN, { capacity: -1, rate: '1/s' }, 400);
await op('delete', 'delete', OQP, `${A}/orgs/${O2}/quotas/qwen`, T_ADMIN, undefined, 200);
await op('gone', 'get', OQP, `${A}/orgs/${O2}/quotas/qwen`, T_ADMIN, undefined, 404);
await op('delete again', 'delete', OQP, `${A}/orgs/${O2}/quotas/qwen`, T_ADMIN, undefined, 404);

// ---- providers
const P = `${A}/providers`;
await op('list', 'get', P, P, T_ADMIN, undefined, 200);
await op('add', 'post', P, P, T_ADMIN, { name: 'mistral' }, 201);
await op('bad name', 'post', P, P, T_ADMIN, { name: 'a b' }, 400);
await op('again: idempotent', 'post', P, P, T_ADMIN, { name: 'mistral' }, 201);
{
	const have = (await call('GET', P, T_ADMIN)).json.providers.length;
	for (let i = have; i < 64; i++) await call('POST', P, T_ADMIN, { name: `fill${i}` });
	await op('table full (64)', 'post', P, P, T_ADMIN, { name: 'one-too-many' }, 409);
	for (let i = have; i < 64; i++) await call('DELETE', `${P}/fill${i}`, T_ADMIN);
}
await op('delete', 'delete', `${P}/{name}`, `${P}/mistral`, T_ADMIN, undefined, 200);
await op('unknown', 'delete', `${P}/{name}`, `${P}/mistral`, T_ADMIN, undefined, 404);

// ---- keys
const K = `${A}/keys`, KI = `${K}/{id}`;
const kbody = { name: 'ci', owner: U1, tier: 'USER', orgId: O1, limits: { capacity: 30, rate: '1/m' }, expiresAt: '2099-01-01T00:00:00Z' };
const created = await op('create', 'post', K, K, T_ADMIN, kbody, 201);
const kid = created.json?.id ?? 'lk_0000000000000000';
await op('bad owner', 'post', K, K, T_ADMIN, { ...kbody, owner: 'bob' }, 400);
got = await op('read', 'get', KI, `${K}/${kid}`, T_ADMIN, undefined, 200);
{
	const { secret, ...rest } = created.json ?? {};
	same('key: POST response (less the secret) = GET', rest, got.json);
	same('key: the fields written read back', ['name', 'owner', 'tier', 'orgId', 'limits', 'expiresAt'].map((f) => got.json?.[f]),
		['name', 'owner', 'tier', 'orgId', 'limits', 'expiresAt'].map((f) => kbody[f]));
	try {
		assert.match(String(got.json?.createdAt), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
		ok('key: createdAt is RFC 3339, like expiresAt');
	} catch (e) {
		notok('key: createdAt is RFC 3339, like expiresAt', e.message);
	}
}
await op('list', 'get', K, K, T_ADMIN, undefined, 200);
await op('unknown', 'get', KI, `${K}/lk_0000000000000000`, T_ADMIN, undefined, 404);
const patched = await op('update', 'patch', KI, `${K}/${kid}`, T_ADMIN, { limits: { capacity: 40, rate: '2/m' } }, 200);
same('key: PATCHed limits read back', patched.json?.limits, { capacity: 40, rate: '2/m' });
await op('bad expiry', 'patch', KI, `${K}/${kid}`, T_ADMIN, { expiresAt: 'soon' }, 400);
await op('unknown', 'patch', KI, `${K}/lk_0000000000000000`, T_ADMIN, { name: 'x' }, 404);
await op('usage', 'get', `${KI}/usage`, `${K}/${kid}/usage`, T_ADMIN, undefined, 200);
await op('unknown', 'get', `${KI}/usage`, `${K}/lk_0000000000000000/usage`, T_ADMIN, undefined, 404);
await op('revoke', 'delete', KI, `${K}/${kid}`, T_ADMIN, undefined, 200);
await op('unknown', 'delete', KI, `${K}/lk_0000000000000000`, T_ADMIN, undefined, 404);

// ---- penalties: reason in and out as a string
const PN = `${A}/penalties`;
const banned = await op('ban', 'post', PN, PN, T_ADMIN, { prefix: '192.0.2.0/24', duration: '10m', reason: 'abuse' }, 201);
got = await op('list', 'get', PN, PN, T_ADMIN, undefined, 200);
{
	const listed = got.json?.penalties?.find((p) => p.prefix === '192.0.2.0/24');
	same('penalty: reason "abuse" reads back as "abuse"', [banned.json?.reason, listed?.reason], ['abuse', 'abuse']);
	// the map holds a monotonic deadline: read at two instants it may round a second apart
	const skew = Math.abs(Date.parse(banned.json?.expiresAt) - Date.parse(listed?.expiresAt));
	same('penalty: POST response = GET element (expiresAt within a second)',
		{ ...banned.json, expiresAt: skew <= 1000 }, { ...listed, expiresAt: true });
	const left = Date.parse(listed?.expiresAt) / 1000 - Date.now() / 1000;
	try {
		assert.ok(left > 590 && left <= 601, `expires in ${left} s`);
		ok('penalty: expiresAt is RFC 3339, 10m from now');
	} catch (e) {
		notok('penalty: expiresAt is RFC 3339, 10m from now', e.message);
	}
}
await op('bad reason', 'post', PN, PN, T_ADMIN, { prefix: '192.0.2.0/24', reason: 1 }, 400);
await op('unban', 'delete', PN, `${PN}?prefix=192.0.2.0/24`, T_ADMIN, undefined, 200);
await op('bad prefix', 'delete', PN, `${PN}?prefix=nope`, T_ADMIN, undefined, 400);
await op('not banned', 'delete', PN, `${PN}?prefix=192.0.2.0/24`, T_ADMIN, undefined, 404);

// ---- policies: camelCase in, the same shape out
const PO = `${A}/policies`;
const pol = { connections: { capacity: 5, rate: '1/s' }, packets: 'unlimited', aggregateV4: 24 };
put = await op('set', 'put', PO, `${PO}?prefix=198.51.100.0/24`, T_ADMIN, pol, 200);
got = await op('list', 'get', PO, PO, T_ADMIN, undefined, 200);
{
	const listed = got.json?.policies?.find((p) => p.prefix === '198.51.100.0/24');
	same('policy: PUT response = GET element', put.json, listed);
	same('policy: the fields written read back', [listed?.connections, listed?.packets, listed?.aggregateV4],
		[pol.connections, pol.packets, pol.aggregateV4]);
}
await op('snake_case is refused', 'put', PO, `${PO}?prefix=198.51.100.0/24`, T_ADMIN, { aggregate_v4: 24 }, 400);
await op('delete', 'delete', PO, `${PO}?prefix=198.51.100.0/24`, T_ADMIN, undefined, 200);
await op('bad prefix', 'delete', PO, `${PO}?prefix=nope`, T_ADMIN, undefined, 400);
await op('gone', 'delete', PO, `${PO}?prefix=198.51.100.0/24`, T_ADMIN, undefined, 404);

// ---- buckets for another process (the gateway's lt_bucket_resolve)
const BK = `${A}/buckets`;
const made = await op('make', 'post', BK, BK, T_ADMIN, { key: `u/USER/openai/${U2}` }, 200);
got = await op('again: the same slot', 'post', BK, BK, T_ADMIN, { key: `u/USER/openai/${U2}` }, 200);
same('bucket: one key, one slot', got.json?.slot, made.json?.slot);
await op('not canonical', 'post', BK, BK, T_ADMIN, { key: "u/USER/openai/ABCDEF00-0000-0000-0000-000000000002" }, 400);
await op('no such API key', 'post', BK, BK, T_ADMIN, { key: 'k/lk_00000000deadbeef' }, 403);

// ---- the request log (test_openapi.sh wrote one usage record into the ring)
const RQ = `${A}/requests`;
{
	let r;
	for (let i = 0; i < 50 && !(r = await call('GET', RQ, T_ADMIN)).json?.requests?.length; i++) await sleep(100);
	await op('a record', 'get', RQ, `${RQ}?limit=10`, T_ADMIN, undefined, 200);
	same('request log: the record written is listed', r.json?.requests?.[0]?.requestId, 'oas-0');
}
await op('bad limit', 'get', RQ, `${RQ}?limit=0`, T_ADMIN, undefined, 400);

// ---- the request log API and the dashboard's sign-in (issue #11)
{
	const L = '/api/v1/logs', LI = `${L}/{id}`, TK = '/api/v1/auth/token';
	let r;
	for (let i = 0; i < 50 && !(r = await call('GET', L, T_ADMIN)).json?.items?.length; i++) await sleep(100);
	r = await op('a page', 'get', L, `${L}?limit=2`, T_ADMIN, undefined, 200);
	if (r.json?.next_cursor)
		await op('the next page', 'get', L, `${L}?limit=2&cursor=${r.json.next_cursor}`, T_ADMIN, undefined, 200);
	await op('filtered, a USER sees its own', 'get', L, `${L}?status=2xx&userId=${U1}`, T_USER, undefined, 200);
	await op('bad status', 'get', L, `${L}?status=6xx`, T_ADMIN, undefined, 400);
	await op('someone else', 'get', L, `${L}?userId=${U2}`, T_USER, undefined, 403);
	const first = r.json?.items?.[0]?.id ?? 1;
	await op('an item', 'get', LI, `${L}/${first}`, T_ADMIN, undefined, 200);
	await op('not an id', 'get', LI, `${L}/x1`, T_ADMIN, undefined, 400);
	await op('absent', 'get', LI, `${L}/999999999`, T_ADMIN, undefined, 404);
	const key = await call('POST', `${A}/keys`, T_ADMIN, { ...kbody, name: 'signin' });
	r = await op('an API key', 'post', TK, TK, key.json?.secret, undefined, 200);
	same('token for an API key: its owner, its tier', [r.json?.sub, r.json?.roles], [U1, ['USER']]);
	await op('a JWT is not exchanged', 'post', TK, TK, T_ADMIN, undefined, 400);
	await op('a wrong key', 'post', TK, TK, 'lk_0000000000000000.nope', undefined, 401);
	await op('a wrong sign-in code', 'post', TK, TK, '', { signin_code: 'x'.repeat(43) }, 401);
	for (let i = 0; i < 20; i++) await call('POST', TK, '', { signin_code: 'y'.repeat(43) });
	await op('too many failures', 'post', TK, TK, '', { signin_code: 'z'.repeat(43) }, 429);
}

// ---- circuit breakers: every configured provider has one from the start
const BR = `${A}/breakers`, BRR = `${BR}/{name}/reset`;
got = await op('list', 'get', BR, BR, T_ADMIN, undefined, 200);
same('breakers: the configured providers are listed, closed',
	['gemini', 'openai', 'qwen'].map((n) => got.json?.breakers?.find((b) => b.name === n)?.state), ['closed', 'closed', 'closed']);
put = await op('reset', 'post', BRR, `${BR}/openai/reset`, T_ADMIN, undefined, 200);
same('breaker: reset answer = GET element', put.json, (await call('GET', BR, T_ADMIN)).json?.breakers?.find((b) => b.name === 'openai'));
await op('unknown', 'post', BRR, `${BR}/nope/reset`, T_ADMIN, undefined, 404);

// ---- upstream health: no gateway runs here, so none is published (the shape is checked
// with a gateway by tests/e2e/test_upstream_health.sh)
{
	const UP = `${A}/upstreams`;
	got = await op('list', 'get', UP, UP, T_ADMIN, undefined, 200);
	same('upstreams: none without a gateway', got.json?.upstreams, []);
}

// ---- analytics: the rollups of the records and decisions above
const AN = '/api/v1/analytics';
for (const [p, name] of [[`${AN}/usage`, 'usage'], [`${AN}/usage.csv`, 'billing export']]) {
	await op(name, 'get', p, `${p}?step=1h&provider=openai`, T_ADMIN, undefined, 200);
	await op('bad step', 'get', p, `${p}?step=30s`, T_ADMIN, undefined, 400);
	await op('a USER token', 'get', p, p, T_USER, undefined, 403);
}
await op('top', 'get', `${AN}/top`, `${AN}/top?limit=5`, T_ADMIN, undefined, 200);
await op('bad limit', 'get', `${AN}/top`, `${AN}/top?limit=0`, T_ADMIN, undefined, 400);
await op('a USER token', 'get', `${AN}/top`, `${AN}/top`, T_USER, undefined, 403);

// ---- config sync (off here: kafka is not configured)
{
	const r = await op('off', 'get', '/api/v1/sync/status', '/api/v1/sync/status', T_ADMIN, undefined, 200);
	same('sync status: off without kafka', r.json, { enabled: false });
	await op('a USER token', 'get', '/api/v1/sync/status', '/api/v1/sync/status', T_USER, undefined, 403);
}

// ---- global limits (off here: kafka is not configured)
{
	const G = '/api/v1/global';
	const r = await op('off', 'get', `${G}/status`, `${G}/status`, T_ADMIN, undefined, 200);
	same('global status: off without kafka', r.json, { enabled: false });
	await op('a USER token', 'get', `${G}/status`, `${G}/status`, T_USER, undefined, 403);
	await op('off', 'post', `${G}/measure`, `${G}/measure`, T_ADMIN, {}, 200);
	await op('a USER token', 'post', `${G}/measure`, `${G}/measure`, T_USER, {}, 403);
}

// ---- health and metrics
await op('up', 'get', '/healthz', '/healthz', '', undefined, 200);
await op('ready', 'get', '/readyz', '/readyz', '', undefined, 200);
// not ready while a program that is not the agent's holds its hook on lo (its watch runs about
// once a second), ready again once the agent has re-attached to the freed hook
{
	const other = fileURLToPath(new URL('../../build/bpf/empty.bpf.o', import.meta.url));
	const status = async () => (await fetch(`${BASE}/readyz`)).status;
	execFileSync('ip', ['-force', 'link', 'set', 'dev', 'lo', 'xdpgeneric', 'obj', other, 'sec', 'xdp']);
	for (let i = 0; i < 50 && (await status()) !== 503; i++) await sleep(100);
	await op('another program holds the hook', 'get', '/readyz', '/readyz', '', undefined, 503);
	execFileSync('ip', ['link', 'set', 'dev', 'lo', 'xdpgeneric', 'off']);
	for (let i = 0; i < 50 && (await status()) !== 200; i++) await sleep(100);
	await op('re-attached', 'get', '/readyz', '/readyz', '', undefined, 200);
}
await op('text', 'get', '/metrics', '/metrics', '', undefined, 200);

// ---- 401 for every authenticated operation, 403 for USER on every admin one
const fill = (t) => t.replace('{tier}', 'USER').replace('{provider}', 'openai').replace('{orgId}', O1)
	.replace('{name}', 'openai').replace('{id}', kid);
for (const [tmpl, item] of Object.entries(spec.paths)) {
	for (const m of METHODS.filter((x) => item[x])) {
		const secured = !(item[m].security && item[m].security.length === 0);
		const q = item[m].parameters?.some((p) => p.name === 'prefix') ? '?prefix=203.0.113.0/24' : '';
		const body = ['put', 'post', 'patch'].includes(m) ? {} : undefined;
		if (secured && item[m].responses['401'])
			await op('no credentials', m, tmpl, fill(tmpl) + q, '', body, 401);
		if (tmpl.startsWith(A) && item[m].responses['403'])
			await op('a USER token', m, tmpl, fill(tmpl) + q, T_USER, body, 403);
	}
}

// ---- a full bucket table (test_openapi.sh runs the agent with token.max_buckets = 64): a
// documented 503 whose problem type the schema names, and nothing charged
{
	const org = (i) => `20000000-0000-0000-0000-${String(i).padStart(12, '0')}`;
	const fillBody = (i) => ({ userId: U1, orgId: org(i), provider: 'gemini', tokens: 1 });
	let i = 0;
	while (i < 80 && (await call('POST', C, T_ADMIN, fillBody(i))).status === 200) i++;
	const r = await op('bucket table full', 'post', C, C, T_ADMIN, fillBody(1000), 503);
	same('503 bucket-table-full: its problem type', r.json?.type, 'https://leaky-tokens.dev/problems/bucket-table-full');
}

// ---- every documented status code of every operation was seen
for (const [tmpl, item] of Object.entries(spec.paths))
	for (const m of METHODS.filter((x) => item[x])) {
		const missing = Object.keys(item[m].responses).filter((s) => !covered.has(`${m} ${tmpl} ${s}`));
		if (missing.length) notok(`${m.toUpperCase()} ${tmpl}: documented statuses exercised`, `never answered: ${missing.join(', ')}`);
		else ok(`${m.toUpperCase()} ${tmpl}: every documented status (${Object.keys(item[m].responses).join(', ')}) answered`);
	}
// the suite counts on this line: a script that never got here passed nothing
console.log('# contract done');
process.exit(failed ? 1 : 0);
