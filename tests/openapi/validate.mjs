// validate.mjs - `node validate.mjs docs/openapi.yaml`: is it valid OpenAPI 3.0?
// Uses @apidevtools/swagger-parser (the OpenAPI JSON schema plus $ref checks).
import SwaggerParser from '@apidevtools/swagger-parser';

try {
	const api = await SwaggerParser.validate(process.argv[2]);
	const ops = Object.values(api.paths).flatMap((p) =>
		Object.keys(p).filter((m) => ['get', 'put', 'post', 'patch', 'delete'].includes(m)));
	console.log(`valid OpenAPI ${api.openapi}: ${ops.length} operations`);
} catch (e) {
	console.log(e.message);
	process.exit(1);
}
