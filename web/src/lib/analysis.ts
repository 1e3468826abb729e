/** Pure helpers for AI analyses: status, tones, progress and links from a bottleneck to its spans. */
import type { Analysis, Bottleneck } from './api';
import type { Tone } from './format';
import { projects } from './projects.svelte';

export type AnalysisStatus = 'pending' | 'running' | 'completed' | 'failed';

/** Whether polling can stop. */
export function isFinal(status: string | null | undefined): boolean {
	return status === 'completed' || status === 'failed';
}

/** A score out of 100: green from 80, amber from 50, red below. */
export function scoreTone(score: number | null | undefined): Tone {
	if (score === null || score === undefined || !Number.isFinite(score)) return 'neutral';
	if (score >= 80) return 'ok';
	if (score >= 50) return 'warn';
	return 'error';
}

const SEVERITY_ORDER = ['critical', 'high', 'medium', 'low'];

export function severityTone(severity: string): Tone {
	if (severity === 'critical' || severity === 'high') return 'error';
	if (severity === 'medium') return 'warn';
	return 'neutral';
}

export function statusTone(status: string): Tone {
	return status === 'completed' ? 'ok' : status === 'failed' ? 'error' : 'warn';
}

/** Bottlenecks worst first: by severity, then by impact. */
export function sortBottlenecks(items: readonly Bottleneck[]): Bottleneck[] {
	const rank = (s: string) => {
		const i = SEVERITY_ORDER.indexOf(s);
		return i < 0 ? SEVERITY_ORDER.length : i;
	};
	return [...items].sort((a, b) => rank(a.severity) - rank(b.severity) || b.impact - a.impact);
}

/**
 * A progress bar's fill (0..1) while waiting: linear up to 90% at the server's estimate, then creeping
 * towards (never reaching) 99%, so a slow AI service never shows a full bar before the answer.
 */
export function progressFraction(elapsedMs: number, estimatedSeconds: number | null | undefined): number {
	const est = Math.max(1, (estimatedSeconds ?? 30) * 1000);
	const e = Math.max(0, elapsedMs);
	if (e <= est) return 0.9 * (e / est);
	return 0.9 + 0.09 * (1 - Math.exp(-(e - est) / est));
}

/**
 * A project's URL segment: its id; a key (as analyses carry) is mapped to the id when the project list
 * knows it (else the key itself, which the project route redirects to the id URL).
 */
export function projectSegment(project: number | string): string {
	if (typeof project === 'number') return String(project);
	return String(projects.byKey(project)?.id ?? project);
}

/** The trace view with a span selected; `project` is the project's id (or its key, see `projectSegment`). */
export function spanHref(project: number | string, traceId: string, spanId?: string | null): string {
	const base = `/projects/${encodeURIComponent(projectSegment(project))}/traces/${encodeURIComponent(traceId)}`;
	return spanId ? `${base}?span=${encodeURIComponent(spanId)}` : base;
}

/** Where a bottleneck points: its function's span (the first of `span_ids`) in the analysed trace. */
export function bottleneckHref(analysis: Pick<Analysis, 'project_key' | 'trace_id'>, b: Bottleneck): string | null {
	if (!analysis.project_key) return null;
	return spanHref(analysis.project_key, analysis.trace_id, b.span_ids?.[0]);
}

/** The analysis page (with its project, so the page can name it: the API only does when asked by project). */
export function analysisHref(id: string, project?: number | string | null): string {
	const base = `/analyses/${encodeURIComponent(id)}`;
	return project !== null && project !== undefined && project !== ''
		? `${base}?project=${encodeURIComponent(projectSegment(project))}`
		: base;
}
