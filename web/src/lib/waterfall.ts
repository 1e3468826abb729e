/**
 * Lays a trace's spans out as waterfall rows: a tree by parent (the server's display parent when given),
 * walked depth-first with siblings in start order, each row placed on a shared time axis.
 */
import type { AttributeValue, Span } from './api';

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

function truthy(value: AttributeValue | undefined): boolean {
	return value === true || value === 'true' || value === 1;
}

/** A function-call span made by the pystrument SDK from stack samples. */
export function isFunctionSpan(span: Span): boolean {
	return truthy(span.attributes?.['pystrument.synthetic']);
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
 * Builds the rows. Spans whose parent is missing from the trace become roots; a parent cycle
 * (bad data) is broken so every span is shown exactly once.
 */
export function buildWaterfall(spans: readonly Span[]): Waterfall {
	if (spans.length === 0) return { rows: [], startEpochMs: 0, totalMs: 0 };

	const byId = new Map<string, Span>();
	for (const s of spans) if (!byId.has(s.span_id)) byId.set(s.span_id, s);
	const unique = [...byId.values()];

	const starts = new Map(unique.map((s) => [s.span_id, epochMs(s.start_time)]));
	const startOf = (s: Span) => starts.get(s.span_id) ?? 0;
	const traceStart = Math.min(...unique.map(startOf));
	const traceEnd = Math.max(...unique.map((s) => startOf(s) + Math.max(0, s.duration) * 1000));
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
		startOf(a) - startOf(b) || b.duration - a.duration || a.name.localeCompare(b.name) || a.span_id.localeCompare(b.span_id);
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

	return { rows, startEpochMs: traceStart, totalMs };
}

/** Rows still visible when the given span ids are collapsed (their descendants hidden). */
export function visibleRows(rows: readonly WaterfallRow[], collapsed: ReadonlySet<string>): WaterfallRow[] {
	if (collapsed.size === 0) return [...rows];
	return rows.filter((r) => !r.ancestors.some((a) => collapsed.has(a)));
}
