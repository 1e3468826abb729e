/**
 * Client calls of the aggregated views (`/performance/flame`, `/performance/function`), typed from the generated
 * schema, through `Api` (an `ApiError` with the server's message on failure).
 */
import { Api, type QueryOf } from './api';
import type { FlameTree, FunctionView } from './aggflame';

export type FlameQuery = QueryOf<'getFlameTree'>;
export type FunctionQuery = QueryOf<'getFunctionView'>;

/** The flame page first draws an even spread of at most this many requests, then all of them. */
export const QUICK_SAMPLE = 1000;

export function flameTree(query: FlameQuery, signal?: AbortSignal, fetcher?: typeof fetch): Promise<FlameTree> {
	return new Api(fetcher).flameTree(query, signal);
}

export function functionView(query: FunctionQuery, signal?: AbortSignal, fetcher?: typeof fetch): Promise<FunctionView> {
	return new Api(fetcher).functionView(query, signal);
}

/** A time range from the URL: explicit `from`/`to` (ISO) win, else a preset ending now (default 24 h). */
export const PRESETS: Record<string, number> = { '15m': 900, '1h': 3600, '6h': 21600, '24h': 86400, '7d': 604800, '30d': 2592000 };

export function rangeOf(search: URLSearchParams, fromKey = 'from', toKey = 'to', now = Date.now()): { start: string; end: string; preset: string | null } {
	const from = search.get(fromKey);
	const to = search.get(toKey);
	if (from && to && !Number.isNaN(Date.parse(from)) && !Number.isNaN(Date.parse(to))) {
		return { start: new Date(from).toISOString(), end: new Date(to).toISOString(), preset: null };
	}
	const preset = search.get('range') ?? '24h';
	const seconds = PRESETS[preset] ?? PRESETS['24h']!;
	return { start: new Date(now - seconds * 1000).toISOString(), end: new Date(now).toISOString(), preset: preset in PRESETS ? preset : '24h' };
}
