/**
 * Places a trace's log lines beside the spans they belong to: the span they were written in, or the deepest
 * function span inside it that was running at that moment (function spans are made after the request from
 * stack samples, so the OpenTelemetry context names the request span; the time says which function logged).
 * Lines whose span is not in the trace go to the first root span.
 */
import type { LogLine } from './api';
import type { Waterfall, WaterfallRow } from './waterfall';

export type LogLevel = 'error' | 'warn' | 'info' | 'debug';

export interface PlacedLog {
	log: LogLine;
	/** Milliseconds from the trace start (the waterfall's axis). */
	atMs: number;
	/** Position on the waterfall's time axis, 0..1 (clamped). */
	offset: number;
	level: LogLevel;
}

/** The OTel severity number's band (17+ error, 13+ warn, 9+ info), else the text. */
export function logLevel(log: Pick<LogLine, 'severity_number' | 'severity_text'>): LogLevel {
	const n = log.severity_number;
	if (n >= 17) return 'error';
	if (n >= 13) return 'warn';
	if (n >= 9) return 'info';
	if (n >= 1) return 'debug';
	const text = (log.severity_text || '').toUpperCase();
	if (text.startsWith('ERR') || text === 'CRITICAL' || text === 'FATAL') return 'error';
	if (text.startsWith('WARN')) return 'warn';
	if (text.startsWith('DEBUG') || text.startsWith('TRACE')) return 'debug';
	return 'info';
}

/** A log body as one line of text (structured bodies as JSON). */
export function logText(body: unknown): string {
	if (body === null || body === undefined) return '';
	if (typeof body === 'string') return body;
	try {
		return JSON.stringify(body);
	} catch {
		return String(body);
	}
}

/** Log lines by the span id of the row they are shown on, each list in time order. */
export function placeLogs(logs: readonly LogLine[], waterfall: Waterfall): Map<string, PlacedLog[]> {
	const placed = new Map<string, PlacedLog[]>();
	const rows = waterfall.rows;
	if (rows.length === 0 || logs.length === 0) return placed;
	const byId = new Map<string, WaterfallRow>(rows.map((r) => [r.span.span_id, r]));
	const functions = rows.filter((r) => r.isFunction);
	for (const log of logs) {
		const epoch = Date.parse(log.timestamp);
		const atMs = Number.isNaN(epoch) ? 0 : epoch - waterfall.startEpochMs;
		const home = (log.span_id ? byId.get(log.span_id) : undefined) ?? rows[0]!;
		let best = home;
		for (const r of functions) {
			if (r.depth > best.depth && r.ancestors.includes(home.span.span_id) && r.startMs <= atMs && atMs <= r.startMs + r.durationMs)
				best = r;
		}
		const total = waterfall.totalMs;
		const entry: PlacedLog = { log, atMs, offset: total > 0 ? Math.min(1, Math.max(0, atMs / total)) : 0, level: logLevel(log) };
		const list = placed.get(best.span.span_id);
		if (list) list.push(entry);
		else placed.set(best.span.span_id, [entry]);
	}
	for (const list of placed.values()) list.sort((a, b) => a.atMs - b.atMs);
	return placed;
}
