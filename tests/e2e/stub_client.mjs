// stub_client.mjs - the official openai npm client (tests/openai's pinned copy), unmodified,
// against leaky-stub directly: every OpenAI shape the stub serves parses in the real client.
// Prints "ok - ..." / "not ok - ..." lines (tests/e2e/test_stub_openai.sh numbers them).
// Environment: STUB_URL, the stub's base URL (http://127.0.0.1:PORT).
import OpenAI from '../openai/node_modules/openai/index.mjs';

const baseURL = `${process.env.STUB_URL}/v1`;
let failed = 0;
const tok = (n) => 'tok '.repeat(n);

function ok(cond, name, detail) {
	if (cond) {
		console.log(`ok - ${name}`);
	} else {
		failed++;
		console.log(`not ok - ${name}`);
		if (detail !== undefined) console.log(`# ${JSON.stringify(detail)}`);
	}
}

function client(extra = {}) {
	return new OpenAI({ apiKey: 'sk-stub', baseURL, timeout: 10000, maxRetries: 0, ...extra });
}

// "hello world!": 12 bytes, 3 prompt tokens
const messages = [{ role: 'user', content: 'hello world!' }];

async function chat() {
	const r = await client().chat.completions.create({ model: 'm', max_tokens: 5, messages });
	ok(r.choices[0].message.content === tok(5) && r.choices[0].finish_reason === 'length',
	   'chat completion: 5 tokens, finish length', r);
	ok(r.usage.prompt_tokens === 3 && r.usage.completion_tokens === 5, 'chat usage 3 + 5', r.usage);
}

async function chatStream() {
	const s = await client().chat.completions.create({
		model: 'm', max_tokens: 4, messages, stream: true, stream_options: { include_usage: true } });
	let text = '', usage = null, chunks = 0;
	for await (const ch of s) {
		chunks++;
		text += ch.choices?.[0]?.delta?.content ?? '';
		if (ch.usage) usage = ch.usage;
	}
	ok(chunks === 7 && text === tok(4), 'chat stream: 7 chunks, 4 tokens', { chunks, text });
	ok(usage?.prompt_tokens === 3 && usage?.completion_tokens === 4, 'chat stream usage chunk', usage);
}

async function completions() {
	const r = await client().completions.create({ model: 'm', prompt: 'abcdefgh', max_tokens: 2 });
	ok(r.choices[0].text === tok(2) && r.usage.prompt_tokens === 2, 'legacy completion', r);
}

async function embeddings() {
	// openai-node asks for base64 and decodes it itself
	const r = await client().embeddings.create({ model: 'e', input: ['abcd', 'efgh'] });
	const e = r.data[1].embedding;
	ok(r.data.length === 2 && e.length === 8 && e[0] === -0.5 && e[7] === -0.0625,
	   'embeddings (base64 on the wire) decode to the stub vector', r.data);
	ok(r.usage.prompt_tokens === 2, 'embeddings usage', r.usage);
}

async function responses() {
	const r = await client().responses.create({ model: 'm', input: 'hello world!', max_output_tokens: 3 });
	ok(r.output_text === tok(3) && r.usage.input_tokens === 3 && r.usage.output_tokens === 3,
	   'responses: output_text and usage', r);
	const s = await client().responses.create({ model: 'm', input: 'hello world!', stream: true });
	let text = '', fin = null;
	for await (const ev of s) {
		if (ev.type === 'response.output_text.delta') text += ev.delta;
		if (ev.type === 'response.completed') fin = ev.response;
	}
	ok(text === tok(16) && fin?.usage?.output_tokens === 16, 'responses stream: deltas and final usage',
	   { text, usage: fin?.usage });
}

async function retry429() {
	let n = 0;
	const fetchCounted = async (url, init) => { n++; return fetch(url, init); };
	const t0 = Date.now();
	let err;
	try {
		await client({ maxRetries: 1, fetch: fetchCounted,
			       defaultHeaders: { 'x-stub-status': '429', 'x-stub-retry-after': '1' } })
			.chat.completions.create({ model: 'm', messages });
	} catch (e) {
		err = e;
	}
	ok(err?.status === 429 && err?.code === 'rate_limit_exceeded', 'a 429 is an OpenAI RateLimitError',
	   String(err));
	ok(n === 2 && Date.now() - t0 >= 900, 'the client retried once, after Retry-After (1 s)',
	   { n, ms: Date.now() - t0 });
}

for (const t of [chat, chatStream, completions, embeddings, responses, retry429]) {
	try {
		await t();
	} catch (e) {
		ok(false, `${t.name} threw`, String(e?.stack || e));
	}
}
process.exit(failed ? 1 : 0);
