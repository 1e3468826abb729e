import { describe, expect, it } from 'vitest';
import { functionRows, hitAgg, FULL_VIEW, layoutAggregate, layoutDifferential, searchAgg, treeOf, zoomAgg, diffColor, type FlameTree } from './aggflame';

/** A tree as the server sends it: root (1 s over `profiled` requests) → view → [pricing → tax, load]. */
function tree(profiled: number, pricing: number, extra: Array<[number, string, number]> = []): FlameTree {
	const functions = [
		{ name: 'app.view', file: '/app/view.py', library: false },
		{ name: 'app.pricing', file: '/app/pricing.py', library: false },
		{ name: 'app.tax', file: '/app/pricing.py', library: false },
		{ name: 'app.load', file: '/app/db.py', library: false }
	];
	const parent = [-1, 0, 1, 2, 1];
	const fn = [-1, 0, 1, 2, 3];
	const total = [1.0 * profiled, 0.9 * profiled, pricing * profiled, 0.05 * profiled, 0.2 * profiled];
	for (const [p, name, t] of extra) {
		functions.push({ name, file: '', library: false });
		parent.push(p);
		fn.push(functions.length - 1);
		total.push(t * profiled);
	}
	return {
		start: null,
		end: null,
		route: '/x',
		service: null,
		trace_id: null,
		request_count: profiled,
		sampled: profiled,
		stride: 1,
		profiled,
		request_time: total[0]!,
		span_count: 4 * profiled,
		dropped_nodes: 0,
		functions,
		nodes: { parent, function: fn, total, self_time: total.map((t) => t / 2), calls: total.map(() => profiled), requests: total.map(() => profiled) }
	};
}

describe('layoutAggregate', () => {
	it('places children left to right inside their parent, widths as shares of the root', () => {
		const l = layoutAggregate(tree(10, 0.6));
		expect(l.frames.map((f) => [f.key, f.depth])).toEqual([
			['', 0],
			['app.view', 1],
			['app.view;app.pricing', 2],
			['app.view;app.pricing;app.tax', 3],
			['app.view;app.load', 2]
		]);
		const pricing = l.frames[2]!;
		expect(pricing.x1 - pricing.x0).toBeCloseTo(0.6);
		const load = l.frames[4]!;
		expect(load.x0).toBeCloseTo(0.6);
		expect(load.x1).toBeCloseTo(0.8);
		expect(l.total).toBeCloseTo(10);
	});

	it('hit-tests, zooms and searches', () => {
		const l = layoutAggregate(tree(10, 0.6));
		expect(hitAgg(l, FULL_VIEW, 0.7, 2)?.name).toBe('app.load');
		expect(hitAgg(l, FULL_VIEW, 0.95, 2)).toBeNull();
		const view = zoomAgg(l.frames[2]!);
		expect(hitAgg(l, view, 0.5, 3)).toBeNull(); // tax is 0..0.05 of the zoomed 0..0.6: half the view is 0.3
		expect(hitAgg(l, view, 0.01, 3)?.name).toBe('app.tax');
		const found = searchAgg(l, 'PRICING');
		expect([...found.keys]).toEqual(['app.view;app.pricing']);
		expect(found.share).toBeCloseTo(0.6);
	});

	it('sums a function over its call paths, counting a recursive call once', () => {
		const l = layoutAggregate(tree(1, 0.5, [[1, 'app.load', 0.1], [5, 'app.load', 0.05]]));
		const load = functionRows(l).find((r) => r.name === 'app.load')!;
		expect(load.total).toBeCloseTo(0.3); // 0.2 under pricing's sibling + 0.1 directly under view (its nested call is inside)
		expect(treeOf(tree(1, 0.5)).children[0]!.children.map((c) => c.name)).toEqual(['app.pricing', 'app.load']);
	});
});

describe('layoutDifferential', () => {
	it('compares per request and colours the slower path red', () => {
		const l = layoutDifferential(tree(10, 0.2), tree(4, 0.6));
		const pricing = l.frames.find((f) => f.key === 'app.view;app.pricing')!;
		expect(pricing.a).toBeCloseTo(0.2);
		expect(pricing.b).toBeCloseTo(0.6);
		expect(pricing.delta).toBeCloseTo(0.4);
		expect(diffColor(pricing, false)).toMatch(/^hsl\(0 /);
		const load = l.frames.find((f) => f.key === 'app.view;app.load')!;
		expect(load.delta).toBeCloseTo(0);
		expect(diffColor(load, false)).toBe('hsl(220 8% 78%)');
		const rows = functionRows(l);
		expect(rows[0]!.name).toBe('app.pricing');
	});

	it('keeps a path that only A has, in blue', () => {
		const l = layoutDifferential(tree(1, 0.3, [[1, 'app.gone', 0.05]]), tree(1, 0.3));
		const gone = l.frames.find((f) => f.name === 'app.gone')!;
		expect(gone.b).toBe(0);
		expect(gone.x1 - gone.x0).toBeGreaterThan(0);
		expect(diffColor(gone, false)).toMatch(/^hsl\(215 /);
	});
});
