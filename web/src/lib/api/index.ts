/**
 * Typed client for pystrument's REST API (`/api/v1`). Every type comes from `schema.d.ts`, which
 * `npm run gen:api` generates from the server's OpenAPI schema (`openapi.json`), so a change on the
 * server that the UI does not follow fails `npm run check`.
 */
import type { components, operations } from './schema';

type Schemas = components['schemas'];

export type Project = Schemas['ProjectItem'];
export type ProjectDetail = Schemas['ProjectDetail'];
export type ProjectCreate = Schemas['ProjectCreate'];
export type ProjectCreated = Schemas['ProjectCreated'];
export type ProjectPatch = Schemas['ProjectPatch'];
export type ProjectList = Schemas['ProjectPage'];
export type PerformanceRecord = Schemas['RecordItem'];
export type RecordList = Schemas['RecordPage'];
export type RecordDetail = Schemas['RecordDetail'];
export type Span = Schemas['SpanItem'];
export type LogLine = Schemas['LogItem'];
export type LatencyStats = Schemas['LatencyStats'];
export type RouteStats = Schemas['RouteStats'];
export type TimePoint = Schemas['TimePoint'];
export type StatsReport = Schemas['StatsReport'];
export type FunctionStats = Schemas['FunctionStats'];
export type FunctionReport = Schemas['FunctionReport'];
export type Analysis = Schemas['AnalysisDetail'];
export type AnalysisList = Schemas['AnalysisPage'];
export type Bottleneck = Schemas['BottleneckOut'];
export type Suggestion = Schemas['SuggestionOut'];
export type TriggerRequest = Schemas['TriggerRequest'];
export type TriggerData = Schemas['TriggerData'];
export type AuthStatus = Schemas['AuthStatus'];
export type RouteDifferential = Schemas['RouteDifferential'];
export type FunctionDelta = Schemas['FunctionDelta'];
export type ServiceList = Schemas['ServiceList'];

/** The query parameters an operation accepts, as the server documents them. */
export type QueryOf<Op extends keyof operations> = operations[Op] extends { parameters: { query?: infer Q } }
	? NonNullable<Q>
	: never;
export type RecordQuery = QueryOf<'listRecords'>;
export type StatsQuery = QueryOf<'getStats'>;
export type FunctionsQuery = QueryOf<'getHotFunctions'>;
export type AnalysisQuery = QueryOf<'listAnalysisResults'>;
export type DifferentialQuery = QueryOf<'getRouteDifferential'>;

/** The `data` of an operation's 200 answer (the envelope is unwrapped by the client). */
export type DataOf<Op extends keyof operations> = operations[Op] extends {
	responses: { 200: { content: { 'application/json': { data: infer D } } } };
}
	? D
	: never;

/** A failed call: `code` is the envelope code (or the HTTP status when the body was not an envelope). */
export class ApiError extends Error {
	constructor(
		message: string,
		readonly code: number,
		readonly status: number
	) {
		super(message);
		this.name = 'ApiError';
	}
}

type Fetch = typeof fetch;

let onUnauthorized: (() => void) | null = null;

/** Called on any 401 outside `/api/v1/auth/` (the session expired, or the server now wants a token). */
export function setUnauthorizedHandler(handler: (() => void) | null): void {
	onUnauthorized = handler;
}
type QueryValue = string | number | boolean | null | undefined;

/** `?a=1&b=x` from the defined, non-empty values only (so optional filters are simply left out). */
export function queryString(params: Record<string, QueryValue> | object): string {
	const search = new URLSearchParams();
	for (const [k, v] of Object.entries(params as Record<string, QueryValue>)) {
		if (v === undefined || v === null || v === '') continue;
		if (typeof v === 'number' && !Number.isFinite(v)) continue;
		search.set(k, String(v));
	}
	const text = search.toString();
	return text ? `?${text}` : '';
}

const enc = encodeURIComponent;

/** A thin client; pass SvelteKit's `fetch` from a loader, or rely on the global one in the browser. */
export class Api {
	constructor(
		private readonly fetcher: Fetch = (...args) => fetch(...args),
		private readonly base = ''
	) {}

	private async call<Op extends keyof operations>(
		_op: Op,
		method: string,
		path: string,
		body?: unknown,
		signal?: AbortSignal
	): Promise<DataOf<Op>> {
		let response: Response;
		try {
			response = await this.fetcher(this.base + path, {
				method,
				headers:
					body === undefined
						? { accept: 'application/json' }
						: { 'content-type': 'application/json', accept: 'application/json' },
				body: body === undefined ? undefined : JSON.stringify(body),
				signal
			});
		} catch (err) {
			if (err instanceof DOMException && err.name === 'AbortError') throw err;
			throw new ApiError(`network error: ${(err as Error).message ?? String(err)}`, 0, 0);
		}
		let payload: unknown = null;
		try {
			payload = await response.json();
		} catch {
			payload = null;
		}
		if (response.status === 401 && !path.startsWith('/api/v1/auth/')) onUnauthorized?.();
		if (payload && typeof payload === 'object' && 'code' in payload) {
			const env = payload as { code: number; msg?: string; data: DataOf<Op> };
			if (env.code === 0 && response.ok) return env.data;
			throw new ApiError(env.msg || `HTTP ${response.status}`, env.code, response.status);
		}
		throw new ApiError(`HTTP ${response.status} ${response.statusText}`.trim(), response.status, response.status);
	}

	listProjects(query: QueryOf<'listProjects'> = {}, signal?: AbortSignal) {
		return this.call('listProjects', 'GET', `/api/v1/projects${queryString(query)}`, undefined, signal);
	}

	createProject(input: Partial<ProjectCreate> & { name: string }) {
		return this.call('createProject', 'POST', '/api/v1/projects', input);
	}

	getProject(projectKey: string, signal?: AbortSignal) {
		return this.call('getProject', 'GET', `/api/v1/projects/${enc(projectKey)}`, undefined, signal);
	}

	updateProject(projectKey: string, patch: ProjectPatch) {
		return this.call('updateProject', 'PATCH', `/api/v1/projects/${enc(projectKey)}`, patch);
	}

	deleteProject(projectKey: string) {
		return this.call('deleteProject', 'DELETE', `/api/v1/projects/${enc(projectKey)}`);
	}

	rotateKey(projectKey: string) {
		return this.call('rotateProjectKey', 'POST', `/api/v1/projects/${enc(projectKey)}/rotate-key`);
	}

	listRecords(query: RecordQuery, signal?: AbortSignal) {
		return this.call('listRecords', 'GET', `/api/v1/performance/records${queryString(query)}`, undefined, signal);
	}

	getRecord(projectKey: string, traceId: string, signal?: AbortSignal) {
		const path = `/api/v1/performance/records/${enc(traceId)}${queryString({ project_key: projectKey })}`;
		return this.call('getRecord', 'GET', path, undefined, signal);
	}

	stats(query: StatsQuery, signal?: AbortSignal) {
		return this.call('getStats', 'GET', `/api/v1/performance/stats${queryString(query)}`, undefined, signal);
	}

	hotFunctions(query: FunctionsQuery, signal?: AbortSignal) {
		return this.call('getHotFunctions', 'GET', `/api/v1/performance/functions${queryString(query)}`, undefined, signal);
	}

	/** A route's, service's or trace's function spans merged by call path (the aggregated flame graph). */
	flameTree(query: QueryOf<'getFlameTree'>, signal?: AbortSignal) {
		return this.call('getFlameTree', 'GET', `/api/v1/performance/flame${queryString(query)}`, undefined, signal);
	}

	/** One function's callers, callees, share over time and traces. */
	functionView(query: QueryOf<'getFunctionView'>, signal?: AbortSignal) {
		return this.call('getFunctionView', 'GET', `/api/v1/performance/function${queryString(query)}`, undefined, signal);
	}

	/** The project's service names (busiest first), for the service filter. */
	listServices(query: QueryOf<'listServices'>, signal?: AbortSignal) {
		return this.call('listServices', 'GET', `/api/v1/performance/services${queryString(query)}`, undefined, signal);
	}

	routeDifferential(query: DifferentialQuery, signal?: AbortSignal) {
		const path = `/api/v1/performance/routes/differential${queryString(query)}`;
		return this.call('getRouteDifferential', 'GET', path, undefined, signal);
	}

	triggerAnalysis(input: Partial<TriggerRequest> & { trace_id: string }) {
		return this.call('triggerAnalysis', 'POST', '/api/v1/analysis/trigger', input);
	}

	/** With the project's key the answer names the project (and an analysis of another project is a 404). */
	getAnalysis(analysisId: string, signal?: AbortSignal, projectKey?: string | null) {
		const path = `/api/v1/analysis/results/${enc(analysisId)}${queryString({ project_key: projectKey })}`;
		return this.call('getAnalysisResult', 'GET', path, undefined, signal);
	}

	listAnalyses(query: AnalysisQuery, signal?: AbortSignal) {
		return this.call('listAnalysisResults', 'GET', `/api/v1/analysis/results${queryString(query)}`, undefined, signal);
	}

	authStatus(signal?: AbortSignal) {
		return this.call('getAuthStatus', 'GET', '/api/v1/auth/status', undefined, signal);
	}

	// The schema leaves these two answers untyped (their handlers also set a cookie): they are AuthStatus envelopes.
	login(token: string): Promise<AuthStatus> {
		return this.call('login', 'POST', '/api/v1/auth/login', { token }) as Promise<unknown> as Promise<AuthStatus>;
	}

	logout(): Promise<AuthStatus> {
		return this.call('logout', 'POST', '/api/v1/auth/logout') as Promise<unknown> as Promise<AuthStatus>;
	}

	/** The speedscope download (not enveloped, so a plain link). */
	speedscopeUrl(projectKey: string, traceId: string): string {
		return `${this.base}/api/v1/performance/records/${enc(traceId)}/speedscope${queryString({ project_key: projectKey })}`;
	}
}

export const api = new Api();
