/**
 * Typed client for pystrument's REST API (`/api/v1`), which answers in the envelope `{code, msg, data}`.
 * Types are written by hand from the documented contract; `code` 0 means success.
 */

export interface Envelope<T> {
	code: number;
	msg: string;
	data: T;
}

export type Framework = 'flask' | 'django' | 'fastapi' | 'other' | (string & {});

export interface ProjectCreate {
	name: string;
	description?: string;
	framework: Framework;
}

export interface ProjectCreated {
	project_key: string;
	name: string;
	status: string;
	created_at: string;
}

export interface ProjectSummary {
	project_key: string;
	name: string;
	framework: Framework;
	status: string;
	last_activity: string | null;
	description?: string | null;
	created_at?: string;
}

export interface Page {
	total: number;
	page: number;
	size: number;
}

export interface ProjectList extends Page {
	projects: ProjectSummary[];
}

/** One request (a server or root span) as a performance record. Durations are seconds. */
export interface PerformanceRecord {
	trace_id: string;
	request_path: string;
	duration: number;
	status_code: number | null;
	timestamp: string;
	method?: string | null;
	route?: string | null;
	service_name?: string | null;
	cpu_time?: number | null;
	[extra: string]: unknown;
}

export interface RecordList extends Page {
	records: PerformanceRecord[];
}

export type AttributeValue = string | number | boolean | null | AttributeValue[] | { [k: string]: AttributeValue };

export interface Span {
	span_id: string;
	parent_span_id: string | null;
	/** Where the server nests the span for display (a real child span under the function that encloses it). */
	display_parent_span_id?: string | null;
	name: string;
	kind?: string | number | null;
	start_time: string;
	duration: number;
	status_code?: string | number | null;
	service_name?: string | null;
	attributes: Record<string, AttributeValue>;
}

export interface RecordDetail {
	record: PerformanceRecord;
	spans: Span[];
}

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

/** A thin client; pass SvelteKit's `fetch` from a loader, or rely on the global one in the browser. */
export class Api {
	constructor(
		private readonly fetcher: Fetch = (...args) => fetch(...args),
		private readonly base = ''
	) {}

	private async call<T>(method: string, path: string, body?: unknown, signal?: AbortSignal): Promise<T> {
		let response: Response;
		try {
			response = await this.fetcher(this.base + path, {
				method,
				headers: body === undefined ? { accept: 'application/json' } : { 'content-type': 'application/json', accept: 'application/json' },
				body: body === undefined ? undefined : JSON.stringify(body),
				signal
			});
		} catch (err) {
			if (err instanceof DOMException && err.name === 'AbortError') throw err;
			throw new ApiError(`network error: ${(err as Error).message ?? String(err)}`, 0, 0);
		}
		let payload: Envelope<T> | null = null;
		try {
			payload = (await response.json()) as Envelope<T>;
		} catch {
			payload = null;
		}
		if (payload && typeof payload === 'object' && 'code' in payload) {
			if (payload.code === 0 && response.ok) return payload.data;
			throw new ApiError(payload.msg || `HTTP ${response.status}`, payload.code, response.status);
		}
		throw new ApiError(`HTTP ${response.status} ${response.statusText}`.trim(), response.status, response.status);
	}

	listProjects(page = 1, size = 10, signal?: AbortSignal): Promise<ProjectList> {
		return this.call('GET', `/api/v1/projects?${query({ page, size })}`, undefined, signal);
	}

	createProject(input: ProjectCreate): Promise<ProjectCreated> {
		return this.call('POST', '/api/v1/projects', input);
	}

	getProject(projectKey: string, signal?: AbortSignal): Promise<ProjectSummary> {
		return this.call('GET', `/api/v1/projects/${encodeURIComponent(projectKey)}`, undefined, signal);
	}

	listRecords(projectKey: string, page = 1, size = 20, signal?: AbortSignal): Promise<RecordList> {
		return this.call('GET', `/api/v1/performance/records?${query({ project_key: projectKey, page, size })}`, undefined, signal);
	}

	getRecord(projectKey: string, traceId: string, signal?: AbortSignal): Promise<RecordDetail> {
		const path = `/api/v1/performance/records/${encodeURIComponent(traceId)}?${query({ project_key: projectKey })}`;
		return this.call('GET', path, undefined, signal);
	}
}

function query(params: Record<string, string | number>): string {
	return new URLSearchParams(Object.entries(params).map(([k, v]) => [k, String(v)])).toString();
}

export const api = new Api();
