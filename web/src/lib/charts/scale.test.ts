import { describe, expect, it } from 'vitest';
import { areaPath, linearScale, linePath, nearestIndex, niceStep, niceTicks, segments, timeTickFormat, timeTicks } from './scale';

describe('linearScale', () => {
	it('maps and inverts, including flipped ranges (SVG y grows downward)', () => {
		const y = linearScale([0, 200], [100, 0]);
		expect(y(0)).toBe(100);
		expect(y(200)).toBe(0);
		expect(y(50)).toBe(75);
		expect(y.invert(75)).toBe(50);
		expect(y.domain).toEqual([0, 200]);
	});
	it('puts everything in the middle for an empty domain', () => {
		expect(linearScale([5, 5], [0, 100])(5)).toBe(50);
		expect(linearScale([0, 10], [3, 3]).invert(3)).toBe(0);
	});
});

describe('niceTicks', () => {
	it('uses 1/2/5 steps and widens the domain to them', () => {
		expect(niceStep(100, 4)).toBe(20);
		expect(niceStep(0.37, 4)).toBe(0.1);
		expect(niceStep(7, 4)).toBe(2);
		expect(niceTicks(0, 437, 4)).toEqual({ ticks: [0, 100, 200, 300, 400, 500], domain: [0, 500] });
		expect(niceTicks(0, 0.3, 3).ticks).toEqual([0, 0.1, 0.2, 0.3]);
	});
	it('copes with flat, reversed and missing data', () => {
		expect(niceTicks(0, 0)).toEqual({ ticks: [0, 1], domain: [0, 1] });
		expect(niceTicks(10, 10).domain[0]).toBeLessThanOrEqual(10);
		expect(niceTicks(10, 10).domain[1]).toBeGreaterThan(10);
		expect(niceTicks(5, 1).domain).toEqual([1, 5]);
		expect(niceTicks(Number.NaN, 3)).toEqual({ ticks: [0, 1], domain: [0, 1] });
	});
});

describe('timeTicks', () => {
	const t0 = Date.parse('2024-08-24T10:00:00Z');
	it('picks a round step and aligns ticks to it', () => {
		const ticks = timeTicks(t0 + 7 * 60_000, t0 + 67 * 60_000, 6);
		expect(ticks.map((t) => new Date(t).toISOString().slice(11, 16))).toEqual(['10:15', '10:30', '10:45', '11:00']);
	});
	it('handles an empty span and very long ones', () => {
		expect(timeTicks(t0, t0)).toEqual([t0]);
		expect(timeTicks(t0, t0 + 400 * 86_400_000, 6).length).toBeLessThanOrEqual(7);
	});
	it('labels by span', () => {
		expect(timeTickFormat(60_000).second).toBe('2-digit');
		expect(timeTickFormat(3_600_000).second).toBeUndefined();
		expect(timeTickFormat(7 * 86_400_000).day).toBe('2-digit');
	});
});

describe('paths', () => {
	const pts = [
		{ x: 0, y: 10 },
		{ x: 10, y: 20 },
		{ x: 20, y: null },
		{ x: 30, y: 5 },
		{ x: 40, y: Number.NaN },
		{ x: 50, y: 7 },
		{ x: 60, y: 8 }
	];
	it('splits at missing points', () => {
		expect(segments(pts).map((r) => r.length)).toEqual([2, 1, 2]);
	});
	it('draws lines with gaps, and a lone point as a short dash', () => {
		expect(linePath(pts)).toBe('M0,10L10,20M29,5H31M50,7L60,8');
		expect(linePath([])).toBe('');
	});
	it('closes areas down to the baseline, one per run', () => {
		expect(areaPath(pts.slice(0, 2), 100)).toBe('M0,100L0,10L10,20L10,100Z');
		expect(areaPath([{ x: 5, y: 1 }], 100)).toBe('M4,100L4,1L6,1L6,100Z');
	});
	it('rounds to hundredths', () => {
		expect(linePath([{ x: 1 / 3, y: 2 / 3 }, { x: 1, y: 1 }])).toBe('M0.33,0.67L1,1');
	});
});

describe('nearestIndex', () => {
	it('finds the closest x', () => {
		const xs = [0, 10, 20, 30];
		expect(nearestIndex(xs, -5)).toBe(0);
		expect(nearestIndex(xs, 14)).toBe(1);
		expect(nearestIndex(xs, 16)).toBe(2);
		expect(nearestIndex(xs, 99)).toBe(3);
		expect(nearestIndex([], 1)).toBe(-1);
	});
});
