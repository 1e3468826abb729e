/** Span fixtures for unit tests: the API's full span shape with only what a test cares about given. */
import type { Span } from '../api';

export const T0 = Date.parse('2024-08-24T10:00:00.000Z');

export function span(id: string, parent: string | null, startMs: number, durationMs: number, extra: Partial<Span> = {}): Span {
	return {
		span_id: id,
		parent_span_id: parent,
		display_parent_span_id: parent,
		name: extra.name ?? id,
		kind: 'INTERNAL',
		start_time: new Date(T0 + startMs).toISOString(),
		offset: startMs / 1000,
		duration: durationMs / 1000,
		depth: 0,
		status_code: 0,
		status_message: '',
		service_name: 'shop',
		synthetic: false,
		attributes: {},
		events: [],
		...extra
	};
}

/** A function span as the SDK makes it (`pystrument.synthetic`), with optional self time and library flag. */
export function fn(id: string, parent: string, startMs: number, durationMs: number, extra: { self?: number; library?: boolean; name?: string } = {}): Span {
	const attributes: Record<string, unknown> = { 'pystrument.synthetic': true, 'code.function.name': extra.name ?? id };
	if (extra.self !== undefined) attributes['pystrument.self_time_ms'] = extra.self;
	if (extra.library !== undefined) attributes['pystrument.library'] = extra.library;
	return span(id, parent, startMs, durationMs, { name: extra.name ?? id, synthetic: true, attributes });
}
