/**
 * The performance monitor's filters, kept in the URL (so a view can be shared, reloaded and navigated
 * back to) and turned into the API's query parameters. Durations are milliseconds in the UI and seconds
 * on the wire; time ranges are presets relative to now, or a custom start/end.
 */
import type { FunctionsQuery, RecordQuery, StatsQuery } from './api';

export const RANGES = ['15m', '1h', '6h', '24h', '7d', '30d', 'custom'] as const;
export type Range = (typeof RANGES)[number];
export const DEFAULT_RANGE: Range = '24h';
export const STATUS_CLASSES = ['2xx', '3xx', '4xx', '5xx', 'error'] as const;
export const METHODS = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD', 'OPTIONS'] as const;
export const SORTS = ['timestamp', 'duration'] as const;
export type Sort = (typeof SORTS)[number];
export type Order = 'asc' | 'desc';

export interface RecordFilters {
	route: string;
	path: string;
	method: string;
	/** `1xx`..`5xx`, or `error` (failed requests: 5xx or span error). */
	status: string;
	minMs: number | null;
	maxMs: number | null;
	range: Range;
	/** ISO 8601, used when `range` is `custom`. */
	start: string;
	end: string;
	service: string;
	sort: Sort;
	order: Order;
	page: number;
}

export const EMPTY_FILTERS: RecordFilters = {
	route: '',
	path: '',
	method: '',
	status: '',
	minMs: null,
	maxMs: null,
	range: DEFAULT_RANGE,
	start: '',
	end: '',
	service: '',
	sort: 'timestamp',
	order: 'desc',
	page: 1
};

const RANGE_MS: Record<Exclude<Range, 'custom'>, number> = {
	'15m': 15 * 60_000,
	'1h': 3_600_000,
	'6h': 6 * 3_600_000,
	'24h': 24 * 3_600_000,
	'7d': 7 * 86_400_000,
	'30d': 30 * 86_400_000
};

function oneOf<T extends string>(value: string | null, allowed: readonly T[], fallback: T): T {
	return value !== null && (allowed as readonly string[]).includes(value) ? (value as T) : fallback;
}

function nonNegative(value: string | null): number | null {
	if (value === null || value.trim() === '') return null;
	const n = Number(value);
	return Number.isFinite(n) && n >= 0 ? n : null;
}

function isoOrEmpty(value: string | null): string {
	if (!value) return '';
	const t = Date.parse(value);
	return Number.isNaN(t) ? '' : new Date(t).toISOString();
}

/**
 * A milliseconds field of the filter form: a number input bound with `bind:value` gives a number, or
 * null/undefined/'' when empty (a string when set from elsewhere). null: no filter; undefined: invalid.
 */
export function parseMs(value: number | string | null | undefined): number | null | undefined {
	if (value === null || value === undefined) return null;
	if (typeof value === 'number') return Number.isFinite(value) && value >= 0 ? value : undefined;
	if (value.trim() === '') return null;
	const n = Number(value);
	return Number.isFinite(n) && n >= 0 ? n : undefined;
}

/** Filters from the page URL; anything invalid falls back to its default instead of failing. */
export function parseFilters(params: URLSearchParams): RecordFilters {
	const page = Number.parseInt(params.get('page') ?? '1', 10);
	const status = params.get('status') ?? '';
	return {
		route: params.get('route') ?? '',
		path: params.get('path') ?? '',
		method: (params.get('method') ?? '').toUpperCase(),
		status: (STATUS_CLASSES as readonly string[]).includes(status) || /^[1-5]xx$/.test(status) ? status : '',
		minMs: nonNegative(params.get('min')),
		maxMs: nonNegative(params.get('max')),
		range: oneOf(params.get('range'), RANGES, DEFAULT_RANGE),
		start: isoOrEmpty(params.get('start')),
		end: isoOrEmpty(params.get('end')),
		service: params.get('service') ?? '',
		sort: oneOf(params.get('sort'), SORTS, 'timestamp'),
		order: oneOf(params.get('order'), ['asc', 'desc'] as const, 'desc'),
		page: Number.isFinite(page) && page > 0 ? page : 1
	};
}

/** The URL query for filters, leaving defaults out so links stay short. */
export function filtersToSearch(f: RecordFilters): string {
	const p = new URLSearchParams();
	const put = (k: string, v: string | number | null) => {
		if (v !== null && v !== '') p.set(k, String(v));
	};
	put('route', f.route);
	put('path', f.path);
	put('method', f.method);
	put('status', f.status);
	put('min', f.minMs);
	put('max', f.maxMs);
	if (f.range !== DEFAULT_RANGE) put('range', f.range);
	if (f.range === 'custom') {
		put('start', f.start);
		put('end', f.end);
	}
	put('service', f.service);
	if (f.sort !== 'timestamp') put('sort', f.sort);
	if (f.order !== 'desc') put('order', f.order);
	if (f.page > 1) put('page', f.page);
	const text = p.toString();
	return text ? `?${text}` : '';
}

/**
 * The dashboard's range when none was asked for: the smallest preset holding the project's latest request
 * (so a burst of demo traffic draws lines over an hour, not dots over a day); 1 h without any data.
 */
export function adaptiveRange(lastActivity: string | null | undefined, now: number = Date.now()): Exclude<Range, 'custom'> {
	const t = lastActivity ? Date.parse(lastActivity) : Number.NaN;
	if (Number.isNaN(t)) return '1h';
	const age = Math.max(0, now - t);
	for (const r of ['1h', '6h', '24h', '7d', '30d'] as const) if (age <= RANGE_MS[r] * 0.9) return r;
	return '30d';
}

/** The time window [start, end) as ISO strings; `end` empty means "until now". */
export function timeWindow(range: Range, start: string, end: string, now: number = Date.now()): { start?: string; end?: string } {
	if (range === 'custom') return { start: start || undefined, end: end || undefined };
	return { start: new Date(now - RANGE_MS[range]).toISOString() };
}

/** The window for statistics, which need both ends (a custom range open at either end is closed at now / 30 days back). */
export function statsWindow(range: Range, start: string, end: string, now: number = Date.now()): { start: string; end: string } {
	const w = timeWindow(range, start, end, now);
	const endIso = w.end ?? new Date(now).toISOString();
	return { start: w.start ?? new Date(Date.parse(endIso) - RANGE_MS['30d']).toISOString(), end: endIso };
}

/** The records API query for these filters. */
export function recordQuery(projectKey: string, f: RecordFilters, size: number, now: number = Date.now()): RecordQuery {
	const q: RecordQuery = {
		project_key: projectKey,
		page: f.page,
		size,
		sort: f.sort,
		order: f.order,
		...timeWindow(f.range, f.start, f.end, now)
	};
	if (f.route) q.route = f.route;
	if (f.path) q.path = f.path;
	if (f.method) q.method = f.method;
	if (f.status === 'error') q.error = true;
	else if (f.status) q.status_class = f.status;
	if (f.minMs !== null) q.min_duration = f.minMs / 1000;
	if (f.maxMs !== null) q.max_duration = f.maxMs / 1000;
	if (f.service) q.service = f.service;
	return q;
}

/** The statistics query: every filter of the records list, so the whole page shows the same requests. */
export function statsQuery(
	projectKey: string,
	f: Pick<RecordFilters, 'route' | 'method' | 'service' | 'range' | 'start' | 'end'> & Partial<Pick<RecordFilters, 'path' | 'status' | 'minMs' | 'maxMs'>>,
	now: number = Date.now()
): StatsQuery & FunctionsQuery {
	const q: StatsQuery & FunctionsQuery = { project_key: projectKey, ...statsWindow(f.range, f.start, f.end, now) };
	if (f.route) q.route = f.route;
	if (f.method) q.method = f.method;
	if (f.service) q.service = f.service;
	if (f.path) q.path = f.path;
	if (f.status === 'error') q.error = true;
	else if (f.status) q.status_class = f.status;
	if (f.minMs !== null && f.minMs !== undefined) q.min_duration = f.minMs / 1000;
	if (f.maxMs !== null && f.maxMs !== undefined) q.max_duration = f.maxMs / 1000;
	return q;
}

/** A `datetime-local` input's value (local time, minutes) for an ISO time, and back. */
export function toLocalInput(iso: string): string {
	const t = Date.parse(iso);
	if (Number.isNaN(t)) return '';
	const d = new Date(t);
	const pad = (n: number) => String(n).padStart(2, '0');
	return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

export function fromLocalInput(value: string): string {
	if (!value) return '';
	const t = new Date(value).getTime();
	return Number.isNaN(t) ? '' : new Date(t).toISOString();
}

/** How many filters differ from the defaults (shown on the "clear" button). */
export function activeFilterCount(f: RecordFilters): number {
	let n = 0;
	for (const k of ['route', 'path', 'method', 'status', 'service'] as const) if (f[k]) n++;
	if (f.minMs !== null) n++;
	if (f.maxMs !== null) n++;
	if (f.range !== DEFAULT_RANGE) n++;
	return n;
}
