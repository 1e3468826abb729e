/**
 * One "deep analysis" run as seen by the UI: trigger it (or follow one already queued), poll its result
 * until the worker finishes, and expose status, progress and the result as reactive state.
 */
import { isFinal, progressFraction } from './analysis';
import { Api, ApiError, api as defaultApi, type Analysis, type TriggerData } from './api';

export interface JobOptions {
	api?: Api;
	/** Milliseconds between polls. */
	interval?: number;
	/** Give up polling after this long (the job keeps running on the server). */
	maxWaitMs?: number;
	now?: () => number;
}

export class AnalysisJob {
	trigger = $state<TriggerData | null>(null);
	result = $state<Analysis | null>(null);
	error = $state<string | null>(null);
	/** True while triggering or polling. */
	busy = $state(false);
	/** Set when polling stopped at `maxWaitMs` before the job finished. */
	timedOut = $state(false);
	elapsedMs = $state(0);

	#api: Api;
	#interval: number;
	#maxWait: number;
	#now: () => number;
	#timer: ReturnType<typeof setTimeout> | null = null;
	#startedAt = 0;
	#generation = 0;

	constructor(options: JobOptions = {}) {
		this.#api = options.api ?? defaultApi;
		this.#interval = options.interval ?? 1000;
		this.#maxWait = options.maxWaitMs ?? 180_000;
		this.#now = options.now ?? (() => Date.now());
	}

	get status(): string {
		return this.result?.status ?? this.trigger?.status ?? (this.busy ? 'pending' : 'idle');
	}

	get progress(): number {
		if (this.result && isFinal(this.result.status)) return 1;
		return progressFraction(this.elapsedMs, this.trigger?.estimated_duration);
	}

	/** Queues an analysis of the trace and follows it. */
	async start(input: { trace_id: string; project_key: string; language: string; ai_service?: string }): Promise<void> {
		const generation = this.#reset();
		this.busy = true;
		try {
			const data = await this.#api.triggerAnalysis({ analysis_type: 'manual', ...input });
			if (generation !== this.#generation) return;
			this.trigger = data;
			this.#poll(generation, data.analysis_id, Math.min(500, this.#interval));
		} catch (err) {
			if (generation !== this.#generation) return;
			this.error = message(err);
			this.busy = false;
		}
	}

	/** Follows an analysis that already exists (one queued before the page was opened). */
	follow(analysis: Analysis): void {
		const generation = this.#reset();
		this.result = analysis;
		if (isFinal(analysis.status)) return;
		this.busy = true;
		this.#poll(generation, analysis.analysis_id, this.#interval);
	}

	stop(): void {
		this.#generation++;
		if (this.#timer) clearTimeout(this.#timer);
		this.#timer = null;
		this.busy = false;
	}

	#reset(): number {
		this.stop();
		this.trigger = null;
		this.result = null;
		this.error = null;
		this.timedOut = false;
		this.elapsedMs = 0;
		this.#startedAt = this.#now();
		return this.#generation;
	}

	#poll(generation: number, id: string, delay: number): void {
		this.#timer = setTimeout(async () => {
			if (generation !== this.#generation) return;
			this.elapsedMs = this.#now() - this.#startedAt;
			try {
				const project = this.trigger?.project_key ?? this.result?.project_key;
				const result = await this.#api.getAnalysis(id, undefined, project);
				if (generation !== this.#generation) return;
				this.result = result;
				this.error = null;
				if (isFinal(result.status)) {
					this.busy = false;
					return;
				}
			} catch (err) {
				if (generation !== this.#generation) return;
				// A 404 will not heal; network blips and 503s are retried on the next tick.
				this.error = message(err);
				if (err instanceof ApiError && err.status === 404) {
					this.busy = false;
					return;
				}
			}
			if (this.#now() - this.#startedAt >= this.#maxWait) {
				this.timedOut = true;
				this.busy = false;
				return;
			}
			this.#poll(generation, id, this.#interval);
		}, delay);
	}
}

function message(err: unknown): string {
	return err instanceof Error ? err.message : String(err);
}
