import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { analysisHref, bottleneckHref, isFinal, progressFraction, scoreTone, severityTone, sortBottlenecks } from './analysis';
import { AnalysisJob } from './analysis-job.svelte';
import { Api, type Bottleneck } from './api';

const b = (severity: string, impact: number, span_ids: string[] = []): Bottleneck => ({
	type: 'cpu',
	severity,
	function: 'f',
	description: '',
	impact,
	span_ids
});

describe('analysis helpers', () => {
	it('knows final statuses and tones', () => {
		expect(isFinal('completed')).toBe(true);
		expect(isFinal('failed')).toBe(true);
		expect(isFinal('running')).toBe(false);
		expect(scoreTone(85)).toBe('ok');
		expect(scoreTone(50)).toBe('warn');
		expect(scoreTone(8.6)).toBe('error');
		expect(scoreTone(null)).toBe('neutral');
		expect(severityTone('critical')).toBe('error');
		expect(severityTone('medium')).toBe('warn');
		expect(severityTone('low')).toBe('neutral');
	});
	it('orders bottlenecks by severity then impact', () => {
		const sorted = sortBottlenecks([b('low', 0.9), b('critical', 0.2), b('high', 0.5), b('critical', 0.7)]);
		expect(sorted.map((x) => [x.severity, x.impact])).toEqual([
			['critical', 0.7],
			['critical', 0.2],
			['high', 0.5],
			['low', 0.9]
		]);
	});
	it('fills progress up to 90% at the estimate and never reaches 100%', () => {
		expect(progressFraction(0, 2)).toBe(0);
		expect(progressFraction(1000, 2)).toBeCloseTo(0.45);
		expect(progressFraction(2000, 2)).toBeCloseTo(0.9);
		expect(progressFraction(60_000, 2)).toBeLessThan(0.99);
		expect(progressFraction(60_000, 2)).toBeGreaterThan(0.98);
	});
	it('links a bottleneck to its function span', () => {
		expect(bottleneckHref({ project_key: 'proj_a', trace_id: 't1' }, b('high', 1, ['s1', 's2']))).toBe('/projects/proj_a/traces/t1?span=s1');
		expect(bottleneckHref({ project_key: 'proj_a', trace_id: 't1' }, b('high', 1))).toBe('/projects/proj_a/traces/t1');
		expect(bottleneckHref({ project_key: null, trace_id: 't1' }, b('high', 1))).toBeNull();
		expect(analysisHref('analysis_1')).toBe('/analyses/analysis_1');
		expect(analysisHref('analysis_1', 'proj_a')).toBe('/analyses/analysis_1?project=proj_a');
	});
});

describe('AnalysisJob', () => {
	beforeEach(() => vi.useFakeTimers());
	afterEach(() => vi.useRealTimers());

	function server(statuses: string[]) {
		const seen: string[] = [];
		const fetcher = (async (url: string) => {
			seen.push(url);
			const ok = (data: unknown) => new Response(JSON.stringify({ code: 0, msg: 'success', data }), { status: 200 });
			if (url.endsWith('/trigger')) return ok({ analysis_id: 'a1', status: 'pending', estimated_duration: 2, ai_service: 'builtin', trace_id: 't', project_key: 'k' });
			const status = statuses.shift() ?? 'completed';
			return ok({ analysis_id: 'a1', status, performance_score: status === 'completed' ? 42 : null, bottleneck_analysis: [], optimization_suggestions: [] });
		}) as unknown as typeof fetch;
		return { api: new Api(fetcher), seen };
	}

	it('triggers, polls until the result is final, then stops', async () => {
		const { api, seen } = server(['pending', 'running', 'completed']);
		let now = 0;
		const job = new AnalysisJob({ api, interval: 1000, now: () => now });
		await job.start({ trace_id: 't', project_key: 'k', language: 'en' });
		expect(job.trigger?.analysis_id).toBe('a1');
		expect(job.busy).toBe(true);
		for (let i = 0; i < 5; i++) {
			now += 1000;
			await vi.advanceTimersByTimeAsync(1000);
		}
		expect(job.result?.status).toBe('completed');
		expect(job.result?.performance_score).toBe(42);
		expect(job.busy).toBe(false);
		expect(job.progress).toBe(1);
		expect(seen.filter((u) => u.includes('/results/a1')).length).toBe(3);
	});

	it('gives up polling after maxWaitMs but keeps what it saw', async () => {
		const { api } = server(Array(100).fill('running'));
		let now = 0;
		const job = new AnalysisJob({ api, interval: 1000, maxWaitMs: 3000, now: () => now });
		await job.start({ trace_id: 't', project_key: 'k', language: 'en' });
		for (let i = 0; i < 10; i++) {
			now += 1000;
			await vi.advanceTimersByTimeAsync(1000);
		}
		expect(job.timedOut).toBe(true);
		expect(job.busy).toBe(false);
		expect(job.result?.status).toBe('running');
	});

	it('reports a failed trigger', async () => {
		const fetcher = (async () => new Response(JSON.stringify({ code: 40001, msg: "ai_service 'x' is not configured", data: null }), { status: 400 })) as unknown as typeof fetch;
		const job = new AnalysisJob({ api: new Api(fetcher) });
		await job.start({ trace_id: 't', project_key: 'k', language: 'en', ai_service: 'x' });
		expect(job.error).toContain('not configured');
		expect(job.busy).toBe(false);
	});
});
