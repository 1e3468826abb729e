import { readFileSync } from 'node:fs';
import openapiTS, { astToString, COMMENT_HEADER } from 'openapi-typescript';
import { describe, expect, it } from 'vitest';

// The client's types must be the ones generated from the committed schema: regenerate with `npm run gen:types`
// (or `npm run gen:api` to dump the server's schema first).
describe('schema.d.ts', () => {
	it('matches openapi.json', async () => {
		const schemaUrl = new URL('../../../openapi.json', import.meta.url);
		const generated = COMMENT_HEADER + astToString(await openapiTS(schemaUrl));
		const committed = readFileSync(new URL('./schema.d.ts', import.meta.url), 'utf8');
		expect(committed === generated, 'src/lib/api/schema.d.ts is stale: run `npm run gen:types`').toBe(true);
	});

	it('covers the endpoints the UI calls', () => {
		const schema = JSON.parse(readFileSync(new URL('../../../openapi.json', import.meta.url), 'utf8')) as { paths: Record<string, object> };
		for (const path of [
			'/api/v1/projects',
			'/api/v1/projects/{project_key}',
			'/api/v1/projects/{project_key}/rotate-key',
			'/api/v1/performance/records',
			'/api/v1/performance/records/{trace_id}',
			'/api/v1/performance/records/{trace_id}/speedscope',
			'/api/v1/performance/stats',
			'/api/v1/performance/functions',
			'/api/v1/analysis/trigger',
			'/api/v1/analysis/results',
			'/api/v1/analysis/results/{analysis_id}'
		])
			expect(schema.paths, path).toHaveProperty([path]);
	});
});
