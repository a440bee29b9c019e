// client.mjs - the official openai npm client, unmodified, pointed at leaky-gateway.
// Prints "ok - ..." / "not ok - ..." lines (tests/e2e/test_gw_openai.sh numbers them).
//
// Environment:
//   LT_GW        base URL of the gateway's OpenAI-compatible routes, e.g. http://127.0.0.1:18080/v1
//   LT_KEY       an API key with room for a few requests
//   LT_KEY_SHORT an API key whose request limit frees again within a few seconds
//   LT_KEY_LONG  an API key whose request limit frees only after more than 60 s
//   LT_MODEL     a model the gateway routes to the stub
import OpenAI from 'openai';

const base = process.env.LT_GW;
const model = process.env.LT_MODEL || 'gpt-4o-mini';
let failed = 0;

function ok(cond, name, detail) {
	if (cond) {
		console.log(`ok - ${name}`);
	} else {
		failed++;
		console.log(`not ok - ${name}`);
		if (detail !== undefined) console.log(`# ${JSON.stringify(detail)}`);
	}
}

// Counts the HTTP requests the client really sends, to tell a retry from none.
function counted() {
	const c = { n: 0, statuses: [] };
	c.fetch = async (url, init) => {
		c.n++;
		const r = await fetch(url, init);
		c.statuses.push(r.status);
		return r;
	};
	return c;
}

function client(key, c, extra = {}) {
	return new OpenAI({ apiKey: key, baseURL: base, fetch: c ? c.fetch : undefined,
			    timeout: 20000, ...extra });
}

async function chat() {
	const r = await client(process.env.LT_KEY).chat.completions.create({
		model, max_tokens: 8,
		messages: [{ role: 'user', content: 'Say hello.' }],
	});
	ok(r.object === 'chat.completion' && r.choices?.length === 1 &&
	   typeof r.choices[0].message?.content === 'string',
	   'a chat completion through the gateway parses as OpenAI', r);
	ok(r.usage && r.usage.completion_tokens <= 8 && r.usage.prompt_tokens > 0,
	   'its usage is reported and completion_tokens <= max_tokens', r.usage);
}

async function stream() {
	const s = await client(process.env.LT_KEY).chat.completions.create({
		model, max_tokens: 16, stream: true, stream_options: { include_usage: true },
		messages: [{ role: 'user', content: 'Count.' }],
	});
	let chunks = 0, text = '', usage = null;
	for await (const ch of s) {
		chunks++;
		if (ch.choices?.[0]?.delta?.content) text += ch.choices[0].delta.content;
		if (ch.usage) usage = ch.usage;
	}
	ok(chunks > 2 && text.length > 0, 'a streamed completion arrives in several chunks',
	   { chunks, text });
	ok(usage && usage.completion_tokens > 0 && usage.completion_tokens <= 16,
	   'the stream ends with the usage chunk the client asked for', usage);
}

async function retried() {
	const c = counted();
	// spend the one request the key's bucket holds
	await client(process.env.LT_KEY_SHORT, c, { maxRetries: 0 }).chat.completions.create({
		model, max_tokens: 4, messages: [{ role: 'user', content: 'a' }] });
	const t0 = Date.now();
	let r, err;
	try {
		r = await client(process.env.LT_KEY_SHORT, c, { maxRetries: 2 }).chat.completions
			.create({ model, max_tokens: 4, messages: [{ role: 'user', content: 'b' }] });
	} catch (e) {
		err = e;
	}
	const waited = Date.now() - t0;
	ok(!err && r?.object === 'chat.completion', 'after a 429 the client retries and succeeds',
	   { err: String(err), statuses: c.statuses });
	ok(c.statuses.includes(429) && c.n >= 3, 'the client really got a 429 first',
	   c.statuses);
	ok(waited >= 500, 'the client waited as Retry-After said before retrying', waited);
}

async function noRetry() {
	const c = counted();
	await client(process.env.LT_KEY_LONG, c, { maxRetries: 0 }).chat.completions.create({
		model, max_tokens: 4, messages: [{ role: 'user', content: 'a' }] });
	let err;
	const t0 = Date.now();
	try {
		await client(process.env.LT_KEY_LONG, c, { maxRetries: 3 }).chat.completions.create({
			model, max_tokens: 4, messages: [{ role: 'user', content: 'b' }] });
	} catch (e) {
		err = e;
	}
	ok(err && err.status === 429, 'a limit that frees after more than 60 s is a 429 error',
	   String(err));
	ok(c.n === 2, 'x-should-retry: false: the client does not retry', c.statuses);
	ok(Date.now() - t0 < 5000, 'and it fails fast');
	ok(err?.error?.code === 'rate_limit_exceeded' || err?.code === 'rate_limit_exceeded',
	   'the error body is OpenAI-shaped (code rate_limit_exceeded)', err?.error);
}

for (const t of [chat, stream, retried, noRetry]) {
	try {
		await t();
	} catch (e) {
		ok(false, `${t.name} threw`, String(e?.stack || e));
	}
}
// the suite counts on this line: a client that never got here (a missing package, a crash)
// is a failure there, not a short run of passes
console.log('# client done');
process.exit(failed ? 1 : 0);
