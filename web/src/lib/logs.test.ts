import { describe, expect, it } from 'vitest';
import type { LogLine, Span } from './api';
import { logLevel, logText, placeLogs } from './logs';
import { buildWaterfall } from './waterfall';

const T0 = Date.parse('2026-03-10T12:00:00Z');
const iso = (ms: number) => new Date(T0 + ms).toISOString();

function span(id: string, parent: string | null, startMs: number, durationMs: number, fn = false): Span {
	return {
		span_id: id,
		parent_span_id: parent,
		display_parent_span_id: parent,
		name: id,
		kind: fn ? 'INTERNAL' : 'SERVER',
		start_time: iso(startMs),
		offset: startMs / 1000,
		duration: durationMs / 1000,
		depth: 0,
		status_code: 0,
		status_message: '',
		service_name: 'svc',
		synthetic: fn,
		attributes: fn ? { 'pystrument.synthetic': true } : {},
		events: []
	};
}

function log(ms: number, spanId: string | null, severity = 9, body: unknown = 'line'): LogLine {
	return { timestamp: iso(ms), span_id: spanId, severity_text: '', severity_number: severity, body, attributes: {}, scope_name: '' };
}

describe('placeLogs', () => {
	const wf = buildWaterfall([
		span('req', null, 0, 100),
		span('view', 'req', 10, 80, true),
		span('query', 'view', 20, 30, true),
		span('db', 'req', 60, 10)
	]);

	it('puts a line on the deepest function span running at its time, inside the span it was written in', () => {
		const placed = placeLogs([log(25, 'req'), log(70, 'req'), log(5, 'req'), log(65, 'db')], wf);
		expect(placed.get('query')!.map((p) => p.atMs)).toEqual([25]);
		expect(placed.get('view')!.map((p) => p.atMs)).toEqual([70]);
		expect(placed.get('req')!.map((p) => p.atMs)).toEqual([5]);
		expect(placed.get('db')!.map((p) => p.offset)).toEqual([0.65]);
	});

	it('sends lines without a known span to the root, in time order', () => {
		const placed = placeLogs([log(95, null), log(3, 'gone')], wf);
		expect(placed.get('req')!.map((p) => p.atMs)).toEqual([3, 95]);
		expect(placeLogs([log(1, null)], buildWaterfall([])).size).toBe(0);
	});
});

describe('log levels and text', () => {
	it('bands severity numbers and falls back to the text', () => {
		expect([21, 17, 13, 9, 5, 0].map((n) => logLevel({ severity_number: n, severity_text: '' }))).toEqual([
			'error',
			'error',
			'warn',
			'info',
			'debug',
			'info'
		]);
		expect(logLevel({ severity_number: 0, severity_text: 'WARNING' })).toBe('warn');
		expect(logLevel({ severity_number: 0, severity_text: 'critical' })).toBe('error');
	});

	it('shows structured bodies as JSON', () => {
		expect(logText('x')).toBe('x');
		expect(logText({ a: 1 })).toBe('{"a":1}');
		expect(logText(null)).toBe('');
	});
});
