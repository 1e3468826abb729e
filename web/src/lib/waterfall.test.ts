import { describe, expect, it } from 'vitest';
import type { Span } from './api';
import { buildWaterfall, collapsedAncestors, displayParent, isFunctionSpan, scrollToRow, startTimes, virtualWindow, visibleRows } from './waterfall';
import { fn as fnSpan, span, T0 } from './testing/spans';

const fn = (id: string, parent: string, start: number, dur: number): Span => fnSpan(id, parent, start, dur);

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

describe('virtualWindow', () => {
	it('renders the rows in view plus overscan, with padding for the rest', () => {
		expect(virtualWindow(2000, 26, 0, 520, 10)).toEqual({ start: 0, end: 31, padTop: 0, padBottom: (2000 - 31) * 26 });
		const mid = virtualWindow(2000, 26, 26 * 1000, 520, 10);
		expect(mid.start).toBe(990);
		expect(mid.end).toBe(1031);
		expect(mid.padTop + (mid.end - mid.start) * 26 + mid.padBottom).toBe(2000 * 26);
	});
	it('clamps at the end and handles empty lists', () => {
		const end = virtualWindow(50, 26, 10_000, 520, 5);
		expect(end.end).toBe(50);
		expect(end.padBottom).toBe(0);
		expect(end.start).toBeLessThanOrEqual(50);
		expect(virtualWindow(0, 26, 0, 520)).toEqual({ start: 0, end: 0, padTop: 0, padBottom: 0 });
		expect(virtualWindow(10, 26, -50, 520).start).toBe(0);
	});
});

describe('scrollToRow and collapsedAncestors', () => {
	it('scrolls only when the row is out of view, centring it', () => {
		expect(scrollToRow(3, 20, 0, 200)).toBeNull();
		expect(scrollToRow(100, 20, 0, 200)).toBe(2000 - 90);
		expect(scrollToRow(0, 20, 500, 200)).toBe(0);
	});
	it('names the collapsed ancestors hiding a span', () => {
		const rows = buildWaterfall([span('r', null, 0, 10), fn('a', 'r', 1, 5), fn('a1', 'a', 2, 1)]).rows;
		expect(collapsedAncestors(rows, 'a1', new Set(['r', 'x']))).toEqual(['r']);
		expect(collapsedAncestors(rows, 'a1', new Set())).toEqual([]);
		expect(collapsedAncestors(rows, 'nope', new Set(['r']))).toEqual([]);
	});
});

describe('startTimes', () => {
	it("uses the server's offsets when every span has one, else the timestamps", () => {
		const a = span('a', null, 0, 10);
		const b = span('b', 'a', 4, 2);
		expect([...startTimes([a, b]).values()]).toEqual([0, 4]);
		const noOffset = { ...b, offset: Number.NaN };
		expect([...startTimes([a, noOffset]).values()]).toEqual([T0, T0 + 4]);
		// Either way the layout is the same.
		expect(buildWaterfall([a, noOffset]).rows.map((r) => r.startMs)).toEqual([0, 4]);
		expect(buildWaterfall([a, b]).rows.map((r) => r.startMs)).toEqual([0, 4]);
	});
});
