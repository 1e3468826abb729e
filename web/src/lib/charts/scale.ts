/**
 * The little maths behind the hand-written SVG charts: linear scales, "nice" ticks, time ticks and
 * line/area paths that break at missing points (a bucket without requests has no latency).
 */

export interface Scale {
	(value: number): number;
	domain: readonly [number, number];
	range: readonly [number, number];
	invert(pixel: number): number;
}

/** Maps `domain` linearly onto `range`; a zero-width domain maps everything to the range's middle. */
export function linearScale(domain: readonly [number, number], range: readonly [number, number]): Scale {
	const [d0, d1] = domain;
	const [r0, r1] = range;
	const span = d1 - d0;
	const scale = ((v: number) => (span === 0 ? (r0 + r1) / 2 : r0 + ((v - d0) / span) * (r1 - r0))) as Scale;
	scale.domain = domain;
	scale.range = range;
	scale.invert = (p: number) => (r1 === r0 ? d0 : d0 + ((p - r0) / (r1 - r0)) * span);
	return scale;
}

/** A round step (1, 2 or 5 times a power of ten) giving about `count` intervals over `span` (d3's rule). */
export function niceStep(span: number, count: number): number {
	if (!(span > 0) || !(count > 0)) return 1;
	const raw = span / count;
	const power = 10 ** Math.floor(Math.log10(raw));
	const fraction = raw / power;
	const nice = fraction >= Math.SQRT2 * 5 ? 10 : fraction >= Math.sqrt(10) ? 5 : fraction >= Math.SQRT2 ? 2 : 1;
	return nice * power;
}

/** Ticks covering [min, max] at a round step, and the domain widened to the outer ticks. */
export function niceTicks(min: number, max: number, count = 4): { ticks: number[]; domain: [number, number] } {
	if (!Number.isFinite(min) || !Number.isFinite(max)) return { ticks: [0, 1], domain: [0, 1] };
	if (max < min) [min, max] = [max, min];
	if (max === min) {
		if (max === 0) return { ticks: [0, 1], domain: [0, 1] };
		const pad = Math.abs(max) * 0.5;
		min -= pad;
		max += pad;
		if (min < 0 && max > 0 && min > -pad * 2) min = 0;
	}
	const step = niceStep(max - min, count);
	const lo = Math.floor(min / step + 1e-9) * step;
	const hi = Math.ceil(max / step - 1e-9) * step;
	const ticks: number[] = [];
	// Rounded to the step's precision so 0.1 + 0.2 never prints as 0.30000000000000004.
	const digits = Math.max(0, -Math.floor(Math.log10(step)) + 1);
	for (let v = lo; v <= hi + step / 2 && ticks.length < 50; v += step) ticks.push(Number(v.toFixed(digits)));
	return { ticks, domain: [ticks[0] ?? lo, ticks[ticks.length - 1] ?? hi] };
}

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
const TIME_STEPS = [
	SECOND,
	5 * SECOND,
	15 * SECOND,
	30 * SECOND,
	MINUTE,
	5 * MINUTE,
	15 * MINUTE,
	30 * MINUTE,
	HOUR,
	3 * HOUR,
	6 * HOUR,
	12 * HOUR,
	DAY,
	2 * DAY,
	7 * DAY,
	30 * DAY
];

/**
 * Time ticks (epoch ms) at a round step giving at most `count` ticks within [start, end].
 * Steps of a day or more align to UTC midnight; shorter ones to the epoch, i.e. to round local
 * minutes and hours in every time zone with a whole-hour offset.
 */
export function timeTicks(start: number, end: number, count = 6): number[] {
	if (!(end > start)) return Number.isFinite(start) ? [start] : [];
	const span = end - start;
	const step = TIME_STEPS.find((s) => span / s <= count) ?? Math.ceil(span / count / DAY) * DAY;
	const ticks: number[] = [];
	for (let t = Math.ceil(start / step) * step; t <= end && ticks.length <= count; t += step) ticks.push(t);
	return ticks;
}

/** How to label a time tick: with the date for multi-day spans, with seconds for short ones. */
export function timeTickFormat(span: number): Intl.DateTimeFormatOptions {
	if (span >= 2 * DAY) return { month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' };
	if (span <= 5 * MINUTE) return { hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23' };
	return { hour: '2-digit', minute: '2-digit', hourCycle: 'h23' };
}

export interface Point {
	x: number;
	y: number | null;
}

function num(v: number): string {
	return String(Math.round(v * 100) / 100);
}

/** Consecutive runs of defined points; a `null` y (or a non-finite one) ends a run. */
export function segments(points: readonly Point[]): Point[][] {
	const runs: Point[][] = [];
	let run: Point[] = [];
	for (const p of points) {
		if (p.y === null || !Number.isFinite(p.y) || !Number.isFinite(p.x)) {
			if (run.length) runs.push(run);
			run = [];
		} else run.push(p);
	}
	if (run.length) runs.push(run);
	return runs;
}

/** An SVG path through the points (pixels), with a gap wherever y is missing. A lone point is a dot-long line. */
export function linePath(points: readonly Point[]): string {
	return segments(points)
		.map((run) =>
			run.length === 1
				? `M${num(run[0]!.x - 1)},${num(run[0]!.y!)}H${num(run[0]!.x + 1)}`
				: run.map((p, i) => `${i === 0 ? 'M' : 'L'}${num(p.x)},${num(p.y!)}`).join('')
		)
		.join('');
}

/** A closed SVG area from the points down to `baseline` (pixels), one shape per run of defined points. */
export function areaPath(points: readonly Point[], baseline: number): string {
	return segments(points)
		.map((run) => {
			const first = run[0]!;
			const last = run[run.length - 1]!;
			const x0 = run.length === 1 ? first.x - 1 : first.x;
			const x1 = run.length === 1 ? last.x + 1 : last.x;
			const top = run.length === 1 ? `L${num(x0)},${num(first.y!)}L${num(x1)},${num(first.y!)}` : run.map((p) => `L${num(p.x)},${num(p.y!)}`).join('');
			return `M${num(x0)},${num(baseline)}${top}L${num(x1)},${num(baseline)}Z`;
		})
		.join('');
}

/** Index of the point whose x is nearest to `x` (points sorted by x), for hover read-outs; -1 when empty. */
export function nearestIndex(xs: readonly number[], x: number): number {
	if (xs.length === 0) return -1;
	let lo = 0;
	let hi = xs.length - 1;
	while (hi - lo > 1) {
		const mid = (lo + hi) >> 1;
		if (xs[mid]! <= x) lo = mid;
		else hi = mid;
	}
	return Math.abs(xs[lo]! - x) <= Math.abs(xs[hi]! - x) ? lo : hi;
}
