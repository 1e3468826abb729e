/**
 * Lays a trace's spans out as waterfall rows: a tree by parent (the server's display parent when given),
 * walked depth-first with siblings in start order, each row placed on a shared time axis.
 */
import type { Span } from './api';

export interface WaterfallRow {
	span: Span;
	depth: number;
	/** Milliseconds from the trace start to this span's start. */
	startMs: number;
	durationMs: number;
	/** Bar position and width as fractions (0..1) of the trace's time range. */
	offset: number;
	width: number;
	isFunction: boolean;
	childCount: number;
	/** The span id of each ancestor, root first (used to collapse subtrees). */
	ancestors: string[];
}

export interface Waterfall {
	rows: WaterfallRow[];
	/** Epoch milliseconds of the earliest span start. */
	startEpochMs: number;
	totalMs: number;
}

function truthy(value: unknown): boolean {
	return value === true || value === 'true' || value === 1;
}

/** A function-call span made by the pystrument SDK from stack samples (the server's `synthetic` flag or the attribute). */
export function isFunctionSpan(span: Span): boolean {
	return span.synthetic === true || truthy(span.attributes?.['pystrument.synthetic']);
}

/** The parent used for display: the server's `display_parent_span_id` wins over the OTel parent. */
export function displayParent(span: Span): string | null {
	return span.display_parent_span_id || span.parent_span_id || null;
}

function epochMs(iso: string): number {
	const t = Date.parse(iso);
	return Number.isNaN(t) ? 0 : t;
}

/**
 * Each span's start in milliseconds on one axis: the server's `offset` (seconds from the trace start) when every
 * span has one, which spares parsing thousands of timestamps; otherwise the parsed `start_time`.
 */
export function startTimes(spans: readonly Span[]): Map<string, number> {
	const useOffset = spans.every((s) => typeof s.offset === 'number' && Number.isFinite(s.offset));
	return new Map(spans.map((s) => [s.span_id, useOffset ? s.offset * 1000 : epochMs(s.start_time)]));
}

/** Plain code-unit order: stable and much faster than `localeCompare` in sorts over thousands of spans. */
export function compareText(a: string, b: string): number {
	return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * Builds the rows. Spans whose parent is missing from the trace become roots; a parent cycle
 * (bad data) is broken so every span is shown exactly once.
 */
export function buildWaterfall(spans: readonly Span[]): Waterfall {
	if (spans.length === 0) return { rows: [], startEpochMs: 0, totalMs: 0 };

	const byId = new Map<string, Span>();
	for (const s of spans) if (!byId.has(s.span_id)) byId.set(s.span_id, s);
	const unique = [...byId.values()];

	const starts = startTimes(unique);
	const startOf = (s: Span) => starts.get(s.span_id) ?? 0;
	let first = unique[0]!;
	let traceEnd = -Infinity;
	for (const s of unique) {
		if (startOf(s) < startOf(first)) first = s;
		traceEnd = Math.max(traceEnd, startOf(s) + Math.max(0, s.duration) * 1000);
	}
	const traceStart = startOf(first);
	const totalMs = Math.max(0, traceEnd - traceStart);

	const children = new Map<string | null, Span[]>();
	for (const s of unique) {
		let parent = displayParent(s);
		if (parent === s.span_id || (parent !== null && !byId.has(parent))) parent = null;
		const list = children.get(parent);
		if (list) list.push(s);
		else children.set(parent, [s]);
	}
	const order = (a: Span, b: Span) =>
		startOf(a) - startOf(b) || b.duration - a.duration || compareText(a.name, b.name) || compareText(a.span_id, b.span_id);
	for (const list of children.values()) list.sort(order);

	const rows: WaterfallRow[] = [];
	const seen = new Set<string>();
	const visit = (span: Span, depth: number, ancestors: string[]) => {
		if (seen.has(span.span_id)) return;
		seen.add(span.span_id);
		const kids = children.get(span.span_id) ?? [];
		const startMs = startOf(span) - traceStart;
		const durationMs = Math.max(0, span.duration) * 1000;
		rows.push({
			span,
			depth,
			startMs,
			durationMs,
			offset: totalMs > 0 ? startMs / totalMs : 0,
			width: totalMs > 0 ? durationMs / totalMs : 1,
			isFunction: isFunctionSpan(span),
			childCount: kids.length,
			ancestors
		});
		const next = [...ancestors, span.span_id];
		for (const kid of kids) visit(kid, depth + 1, next);
	};
	for (const root of children.get(null) ?? []) visit(root, 0, []);
	// Spans only reachable through a cycle have no root: show them at the top level, in start order.
	for (const s of [...unique].sort(order)) if (!seen.has(s.span_id)) visit(s, 0, []);

	return { rows, startEpochMs: epochMs(first.start_time), totalMs };
}

/** Rows still visible when the given span ids are collapsed (their descendants hidden). */
export function visibleRows(rows: readonly WaterfallRow[], collapsed: ReadonlySet<string>): WaterfallRow[] {
	if (collapsed.size === 0) return [...rows];
	return rows.filter((r) => !r.ancestors.some((a) => collapsed.has(a)));
}

/** The ancestors to expand so that a span's row is visible (those among `collapsed`). */
export function collapsedAncestors(rows: readonly WaterfallRow[], spanId: string, collapsed: ReadonlySet<string>): string[] {
	const row = rows.find((r) => r.span.span_id === spanId);
	return row ? row.ancestors.filter((a) => collapsed.has(a)) : [];
}

export interface VirtualWindow {
	/** First and one-past-last row index to render. */
	start: number;
	end: number;
	/** Pixels of empty space above and below the rendered rows. */
	padTop: number;
	padBottom: number;
}

/**
 * Which rows of a fixed-height list to render for a scroll position: the ones in view plus `overscan`
 * on each side, so a 2,000-span trace puts a few dozen rows in the DOM instead of thousands.
 */
export function virtualWindow(count: number, rowHeight: number, scrollTop: number, viewportHeight: number, overscan = 10): VirtualWindow {
	if (count <= 0 || rowHeight <= 0) return { start: 0, end: 0, padTop: 0, padBottom: 0 };
	const first = Math.floor(Math.max(0, scrollTop) / rowHeight);
	const inView = Math.ceil(Math.max(0, viewportHeight) / rowHeight) + 1;
	const start = Math.min(count, Math.max(0, first - overscan));
	const end = Math.min(count, first + inView + overscan);
	return { start, end, padTop: start * rowHeight, padBottom: (count - end) * rowHeight };
}

/** The scrollTop that brings row `index` into view, or null when it already is. */
export function scrollToRow(index: number, rowHeight: number, scrollTop: number, viewportHeight: number): number | null {
	const top = index * rowHeight;
	const bottom = top + rowHeight;
	if (top >= scrollTop && bottom <= scrollTop + viewportHeight) return null;
	return Math.max(0, top - Math.max(0, (viewportHeight - rowHeight) / 2));
}
