// events.mjs - `node events.mjs SCHEMA MESSAGES.jsonl`: every line (one Kafka message as
// {key, headers, value}, what tests/e2e/kafka_env.sh's consume() writes) against the event
// schema (docs/events/usage.v1.schema.json). Prints "valid N" or each failure, and exits 1.
import { readFileSync } from 'node:fs';
import Ajv from 'ajv';
import addFormats from 'ajv-formats';

const ajv = new Ajv({ allErrors: true, strict: false });
addFormats(ajv);
const validate = ajv.compile(JSON.parse(readFileSync(process.argv[2], 'utf8')));
const lines = readFileSync(process.argv[3], 'utf8').split('\n').filter((l) => l.trim());
let bad = 0;
for (const l of lines) {
	const m = JSON.parse(l);
	if (!validate(m)) {
		bad++;
		console.log(`invalid ${m.headers && m.headers.ce_id}: ${ajv.errorsText(validate.errors)}`);
	}
}
console.log(bad ? `${bad} of ${lines.length} invalid` : `valid ${lines.length}`);
process.exit(bad || !lines.length ? 1 : 0);
