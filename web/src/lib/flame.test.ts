import { describe, expect, it } from 'vitest';
import { frameColor, hitTest, layoutFlame, visibleFrames, zoomTo } from './flame';
import { fn, span } from './testing/spans';

// GET /orders (100 ms) → handler (5..95) → [load (10..40) → query x3 as DB spans], [render (50..90)]
const trace = () => [
	fn('render', 'handler', 50, 40, { self: 40 }),
	span('root', null, 0, 100, { kind: 'SERVER', name: 'GET /orders' }),
	fn('handler', 'root', 5, 90, { self: 10 }),
	fn('load', 'handler', 10, 30, { self: 5 }),
	span('db1', 'root', 12, 5, { display_parent_span_id: 'load', kind: 'CLIENT', name: 'SELECT' }),
	fn('fetch', 'db1', 13, 3), // a function span hanging off a DB span still finds its function ancestor
	span('other-root', null, 200, 5)
];

describe('layoutFlame (time)', () => {
	it('puts the request on top and function spans under their enclosing function, at their times', () => {
		const l = layoutFlame(trace(), 'time', 'root');
		expect(l.frames.map((f) => [f.name, f.depth])).toEqual([
			['GET /orders', 0],
			['handler', 1],
			['load', 2],
			['fetch', 3],
			['render', 2]
		]);
		expect(l.totalMs).toBe(100);
		expect(l.maxDepth).toBe(3);
		const load = l.frames.find((f) => f.name === 'load')!;
		expect(load.x0).toBeCloseTo(0.1);
		expect(load.x1).toBeCloseTo(0.4);
		expect(load.selfMs).toBe(5);
		expect(l.frames[load.parent]!.name).toBe('handler');
		expect(l.frames[0]!.isRoot).toBe(true);
		// DB spans and spans outside the root's subtree are not frames.
		expect(l.frames.some((f) => f.name === 'SELECT' || f.spanId === 'other-root')).toBe(false);
	});

	it('picks the earliest parentless span as the root when none is given', () => {
		expect(layoutFlame(trace(), 'time').frames[0]!.spanId).toBe('root');
	});

	it('clips calls that poke out of their caller or overlap the previous sibling', () => {
		const l = layoutFlame(
			[span('r', null, 0, 100), fn('a', 'r', 90, 30), fn('b', 'r', 10, 50), fn('c', 'r', 40, 20)],
			'time',
			'r'
		);
		const [a, b, c] = ['a', 'b', 'c'].map((n) => l.frames.find((f) => f.name === n)!);
		expect(a!.x1).toBe(1);
		expect(b!.x1).toBeCloseTo(0.6);
		expect(c!.x0).toBeCloseTo(0.6); // started inside b: pushed to b's end
		expect(c!.x1).toBeCloseTo(0.6);
	});

	it('computes self time from children when the attribute is missing', () => {
		const l = layoutFlame([span('r', null, 0, 100), fn('a', 'r', 0, 80), fn('b', 'a', 0, 30)], 'time', 'r');
		expect(l.frames.find((f) => f.name === 'a')!.selfMs).toBeCloseTo(50);
		expect(l.frames[0]!.selfMs).toBeCloseTo(20);
	});

	it('survives empty input and parent cycles', () => {
		expect(layoutFlame([], 'time').frames).toEqual([]);
		const l = layoutFlame([span('r', null, 0, 10), fn('x', 'y', 1, 1), fn('y', 'x', 2, 1)], 'time', 'r');
		expect(l.frames.map((f) => f.name)).toEqual(['r']);
	});

	it('handles 2,000 spans quickly', () => {
		const spans = [span('r', null, 0, 2000)];
		for (let i = 0; i < 2000; i++) spans.push(fn(`f${i}`, i % 10 === 0 ? 'r' : `f${i - 1}`, i, 1.5, { name: `mod.fn_${i % 37}` }));
		const t = performance.now();
		const l = layoutFlame(spans, 'time', 'r');
		const m = layoutFlame(spans, 'merged', 'r');
		expect(performance.now() - t).toBeLessThan(200);
		expect(l.frames.length).toBe(2001);
		expect(m.frames.length).toBeGreaterThan(1);
	});
});

describe('layoutFlame (merged)', () => {
	it('merges same-named siblings, widest first, summing time and calls', () => {
		const spans = [span('r', null, 0, 100), fn('h', 'r', 0, 100)];
		for (let i = 0; i < 5; i++) spans.push(fn(`q${i}`, 'h', i * 10, 8, { name: 'query', self: 8 }));
		spans.push(fn('render', 'h', 60, 30, { name: 'render', self: 30 }));
		spans.push(fn('leaf', 'q3', 31, 2, { name: 'decode' }));
		const l = layoutFlame(spans, 'merged', 'r');
		const names = l.frames.map((f) => [f.name, f.depth, f.calls]);
		expect(names).toEqual([
			['r', 0, 1],
			['h', 1, 1],
			['query', 2, 5],
			['render', 2, 1],
			['decode', 3, 1]
		]);
		const query = l.frames[2]!;
		expect(query.totalMs).toBeCloseTo(40);
		expect(query.selfMs).toBeCloseTo(40);
		expect(query.x0).toBe(0);
		expect(query.x1).toBeCloseTo(0.4);
		expect(l.frames[3]!.x0).toBeCloseTo(0.4);
		expect(l.frames[4]!.x0).toBeCloseTo(0); // under the merged query frame
		expect(spans.map((s) => s.span_id)).toContain(query.spanId);
	});
});

describe('hitTest, zoom and culling', () => {
	const l = layoutFlame(trace(), 'time', 'root');
	it('finds the frame under a point, or nothing in gaps', () => {
		const full = { x0: 0, x1: 1 };
		expect(hitTest(l, full, 0.2, 2)!.name).toBe('load');
		expect(hitTest(l, full, 0.7, 2)!.name).toBe('render');
		expect(hitTest(l, full, 0.45, 2)).toBeNull();
		expect(hitTest(l, full, 0.02, 1)).toBeNull();
		expect(hitTest(l, full, 0.5, 0)!.isRoot).toBe(true);
		expect(hitTest(l, full, 0.5, 9)).toBeNull();
	});
	it('maps points through a zoomed viewport', () => {
		const load = l.frames.find((f) => f.name === 'load')!;
		const view = zoomTo(load);
		expect(view).toEqual({ x0: load.x0, x1: load.x1 });
		expect(hitTest(l, view, 0.15, 3)!.name).toBe('fetch'); // 13..16 ms is 10..20% of load's 10..40 ms
		expect(hitTest(l, view, 0.01, 3)).toBeNull();
	});
	it('leaves out frames outside the view or narrower than half a pixel', () => {
		const names = visibleFrames(l, { x0: 0.45, x1: 1 }, 1000).map((f) => f.name);
		expect(names).toEqual(['GET /orders', 'handler', 'render']);
		expect(visibleFrames(l, { x0: 0, x1: 1 }, 10, 1).map((f) => f.name)).not.toContain('fetch');
	});
	it('colours by name, stable, muted for libraries', () => {
		expect(frameColor({ name: 'a.b', library: false, isRoot: false })).toBe(frameColor({ name: 'a.b', library: false, isRoot: false }));
		expect(frameColor({ name: 'a.b', library: true, isRoot: false })).toMatch(/28%/);
		expect(frameColor({ name: 'x', library: false, isRoot: true })).toMatch(/^hsl\(215/);
	});
});
