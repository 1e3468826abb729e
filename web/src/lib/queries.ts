/**
 * Database (and other client) spans by what they ran: a span named "SELECT" is labelled by its statement
 * (shortened), and identical statements in one trace are grouped, so an N+1 loop shows as "×25".
 */
import type { Span } from './api';

const STATEMENT_KEYS = ['db.query.text', 'db.statement', 'db.query.summary'] as const;
const MAX_LABEL = 90;

/** The span's SQL (or other DB) statement, whitespace collapsed, or null when it has none. */
export function statementOf(span: Pick<Span, 'attributes'>): string | null {
	for (const key of STATEMENT_KEYS) {
		const value = span.attributes?.[key];
		if (typeof value === 'string' && value.trim()) return value.replace(/\s+/g, ' ').trim();
	}
	return null;
}

/** A label no longer than `max` characters (an ellipsis marks the cut). */
export function shorten(text: string, max = MAX_LABEL): string {
	return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}

/** What a span row shows: a DB span's (shortened) statement, else its name. */
export function spanLabel(span: Pick<Span, 'name' | 'attributes'>): string {
	const statement = statementOf(span);
	if (!statement) return span.name;
	// "SELECT" alone says nothing; a name that already carries more than the verb is kept in front.
	return shorten(statement);
}

export interface QueryGroup {
	statement: string;
	count: number;
	totalMs: number;
	spanIds: string[];
}

/** Statements run more than once in the trace, most repeated first (then by total time). */
export function repeatedQueries(spans: readonly Span[], min = 2): QueryGroup[] {
	const groups = new Map<string, QueryGroup>();
	for (const s of spans) {
		const statement = statementOf(s);
		if (!statement) continue;
		const g = groups.get(statement) ?? { statement, count: 0, totalMs: 0, spanIds: [] };
		g.count += 1;
		g.totalMs += Math.max(0, s.duration) * 1000;
		g.spanIds.push(s.span_id);
		groups.set(statement, g);
	}
	return [...groups.values()].filter((g) => g.count >= min).sort((a, b) => b.count - a.count || b.totalMs - a.totalMs);
}

/** How many times each span's statement runs in the trace (span id → count), for the "×N" tags. */
export function repeatCounts(spans: readonly Span[]): Map<string, number> {
	const out = new Map<string, number>();
	for (const g of repeatedQueries(spans)) for (const id of g.spanIds) out.set(id, g.count);
	return out;
}
