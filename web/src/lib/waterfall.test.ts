import { describe, expect, it } from 'vitest';
import type { Span } from './api';
import { buildWaterfall, displayParent, isFunctionSpan, visibleRows } from './waterfall';

const T0 = Date.parse('2024-08-24T10:00:00.000Z');

function span(id: string, parent: string | null, startMs: number, durationMs: number, extra: Partial<Span> = {}): Span {
	return {
		span_id: id,
		parent_span_id: parent,
		name: extra.name ?? id,
		kind: 'INTERNAL',
		start_time: new Date(T0 + startMs).toISOString(),
		duration: durationMs / 1000,
		attributes: {},
		...extra
	};
}

const fn = (id: string, parent: string, start: number, dur: number): Span =>
	span(id, parent, start, dur, { attributes: { 'pystrument.synthetic': true, 'code.function.name': id } });

describe('buildWaterfall', () => {
	it('returns nothing for no spans', () => {
		expect(buildWaterfall([])).toEqual({ rows: [], startEpochMs: 0, totalMs: 0 });
	});

	it('walks the tree depth-first with siblings in start order, whatever the input order', () => {
		const spans = [
			fn('b', 'root', 60, 30),
			span('root', null, 0, 100, { kind: 'SERVER' }),
			fn('a', 'root', 10, 40),
			fn('a1', 'a', 20, 10),
			fn('b1', 'b', 65, 5)
		];
		const w = buildWaterfall(spans);
		expect(w.rows.map((r) => [r.span.span_id, r.depth])).toEqual([
			['root', 0],
			['a', 1],
			['a1', 2],
			['b', 1],
			['b1', 2]
		]);
		expect(w.totalMs).toBe(100);
		expect(w.startEpochMs).toBe(T0);
		const a = w.rows[1]!;
		expect(a.startMs).toBe(10);
		expect(a.offset).toBeCloseTo(0.1);
		expect(a.width).toBeCloseTo(0.4);
		expect(a.childCount).toBe(1);
		expect(a.isFunction).toBe(true);
		expect(w.rows[0]!.isFunction).toBe(false);
		expect(w.rows[2]!.ancestors).toEqual(['root', 'a']);
	});

	it('nests a real child span under its display parent, not its OTel parent', () => {
		const spans = [
			span('root', null, 0, 100),
			fn('handler', 'root', 5, 90),
			span('db', 'root', 20, 30, { display_parent_span_id: 'handler', name: 'SELECT users' })
		];
		const rows = buildWaterfall(spans).rows;
		expect(rows.map((r) => [r.span.name, r.depth])).toEqual([
			['root', 0],
			['handler', 1],
			['SELECT users', 2]
		]);
		expect(displayParent(spans[2]!)).toBe('handler');
		expect(displayParent(spans[0]!)).toBeNull();
	});

	it('orders ties by longer duration first, so a parent-like span leads', () => {
		const rows = buildWaterfall([span('r', null, 0, 50), fn('short', 'r', 10, 5), fn('long', 'r', 10, 20)]).rows;
		expect(rows.map((r) => r.span.span_id)).toEqual(['r', 'long', 'short']);
	});

	it('makes orphans roots and keeps every span once, even in a parent cycle', () => {
		const spans = [
			span('orphan', 'missing', 30, 10),
			span('root', null, 0, 100),
			span('x', 'y', 40, 5),
			span('y', 'x', 41, 5),
			span('self', 'self', 50, 1),
			span('root', null, 0, 100) // duplicate id sent twice
		];
		const rows = buildWaterfall(spans).rows;
		expect(rows.map((r) => r.span.span_id).sort()).toEqual(['orphan', 'root', 'self', 'x', 'y']);
		expect(rows.find((r) => r.span.span_id === 'orphan')!.depth).toBe(0);
		expect(rows.find((r) => r.span.span_id === 'self')!.depth).toBe(0);
		expect(rows.find((r) => r.span.span_id === 'x')!.depth).toBe(0);
		expect(rows.find((r) => r.span.span_id === 'y')!.depth).toBe(1);
	});

	it('places zero-length traces without dividing by zero', () => {
		const w = buildWaterfall([span('r', null, 0, 0)]);
		expect(w.totalMs).toBe(0);
		expect(w.rows[0]!.offset).toBe(0);
		expect(w.rows[0]!.width).toBe(1);
	});
});

describe('isFunctionSpan', () => {
	it('accepts the boolean and string forms of pystrument.synthetic', () => {
		expect(isFunctionSpan(span('a', null, 0, 1, { attributes: { 'pystrument.synthetic': true } }))).toBe(true);
		expect(isFunctionSpan(span('a', null, 0, 1, { attributes: { 'pystrument.synthetic': 'true' } }))).toBe(true);
		expect(isFunctionSpan(span('a', null, 0, 1, { attributes: { 'pystrument.synthetic': false } }))).toBe(false);
		expect(isFunctionSpan(span('a', null, 0, 1))).toBe(false);
	});
});

describe('visibleRows', () => {
	it('hides the descendants of collapsed spans', () => {
		const rows = buildWaterfall([span('r', null, 0, 10), fn('a', 'r', 1, 5), fn('a1', 'a', 2, 1), fn('b', 'r', 7, 2)]).rows;
		expect(visibleRows(rows, new Set(['a'])).map((r) => r.span.span_id)).toEqual(['r', 'a', 'b']);
		expect(visibleRows(rows, new Set(['r'])).map((r) => r.span.span_id)).toEqual(['r']);
		expect(visibleRows(rows, new Set()).length).toBe(4);
	});
});
