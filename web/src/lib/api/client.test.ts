import { describe, expect, it } from 'vitest';
import { Api, ApiError, queryString, setUnauthorizedHandler } from './index';

type Call = { url: string; init: RequestInit };

function fakeFetch(answers: Array<{ status: number; body: unknown } | Error>) {
	const calls: Call[] = [];
	const fetcher = (async (url: string, init: RequestInit) => {
		calls.push({ url, init });
		const next = answers.shift();
		if (!next) throw new Error('no more answers');
		if (next instanceof Error) throw next;
		const text = typeof next.body === 'string' ? next.body : JSON.stringify(next.body);
		return new Response(text, { status: next.status, headers: { 'content-type': 'application/json' } });
	}) as unknown as typeof fetch;
	return { fetcher, calls };
}

describe('queryString', () => {
	it('drops empty, null and non-finite values', () => {
		expect(queryString({ a: 1, b: '', c: null, d: undefined, e: Number.NaN, f: false, g: 'x y' })).toBe('?a=1&f=false&g=x+y');
		expect(queryString({})).toBe('');
	});
});

describe('Api', () => {
	it('unwraps the envelope and builds paths and queries', async () => {
		const { fetcher, calls } = fakeFetch([{ status: 200, body: { code: 0, msg: 'success', data: { records: [], total: 0, page: 2, size: 5 } } }]);
		const api = new Api(fetcher);
		const data = await api.listRecords({ project_key: 'proj_1', page: 2, size: 5, route: '/u/{id}', min_duration: 0.1 });
		expect(data.page).toBe(2);
		expect(calls[0]!.url).toBe('/api/v1/performance/records?project_key=proj_1&page=2&size=5&route=%2Fu%2F%7Bid%7D&min_duration=0.1');
		expect(calls[0]!.init.method).toBe('GET');
	});

	it('sends JSON bodies', async () => {
		const { fetcher, calls } = fakeFetch([{ status: 200, body: { code: 0, msg: 'success', data: { analysis_id: 'a1' } } }]);
		await new Api(fetcher).triggerAnalysis({ trace_id: 't', project_key: 'k', language: 'zh' });
		expect(calls[0]!.url).toBe('/api/v1/analysis/trigger');
		expect(calls[0]!.init.method).toBe('POST');
		expect(JSON.parse(String(calls[0]!.init.body))).toEqual({ trace_id: 't', project_key: 'k', language: 'zh' });
		expect((calls[0]!.init.headers as Record<string, string>)['content-type']).toBe('application/json');
	});

	it('raises ApiError with the server message, status and code', async () => {
		const { fetcher } = fakeFetch([{ status: 404, body: { code: 40401, msg: 'project not found', data: null } }]);
		const err = await new Api(fetcher).getProject('nope').catch((e: unknown) => e);
		expect(err).toBeInstanceOf(ApiError);
		expect((err as ApiError).message).toBe('project not found');
		expect((err as ApiError).status).toBe(404);
		expect((err as ApiError).code).toBe(40401);
	});

	it('reports non-envelope answers and network failures', async () => {
		const { fetcher } = fakeFetch([{ status: 502, body: '<html>bad gateway</html>' }, new TypeError('Failed to fetch')]);
		const api = new Api(fetcher);
		const e1 = (await api.deleteProject('k').catch((e: unknown) => e)) as ApiError;
		expect(e1.status).toBe(502);
		const e2 = (await api.rotateKey('k').catch((e: unknown) => e)) as ApiError;
		expect(e2.status).toBe(0);
		expect(e2.message).toContain('Failed to fetch');
	});

	it('links the speedscope export', () => {
		expect(new Api().speedscopeUrl('proj_a', 'abc')).toBe('/api/v1/performance/records/abc/speedscope?project_key=proj_a');
	});
});

describe('401 handling', () => {
	it('calls the unauthorized handler for API calls, not for the auth endpoints', async () => {
		let calls = 0;
		setUnauthorizedHandler(() => calls++);
		const body = { code: 40101, msg: 'missing or invalid API token', data: null };
		const { fetcher } = fakeFetch([
			{ status: 401, body },
			{ status: 401, body: { code: 40101, msg: 'wrong API token', data: null } }
		]);
		const api = new Api(fetcher);
		await expect(api.listProjects()).rejects.toMatchObject({ status: 401, code: 40101 });
		expect(calls).toBe(1);
		await expect(api.login('nope')).rejects.toThrow('wrong API token');
		expect(calls).toBe(1);
		setUnauthorizedHandler(null);
	});
});
