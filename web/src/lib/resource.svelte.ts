/**
 * Reactive state of one API read: data, error and loading flags, with quiet refreshes for polling.
 * A newer load aborts the one in flight so a slow answer never overwrites a fresher one.
 */
import { untrack } from 'svelte';
import { ApiError } from './api';

export type Fetcher<T> = (signal: AbortSignal) => Promise<T>;

export class Resource<T> {
	// Raw: answers are replaced whole, never mutated, and a 2,000-span trace must not be wrapped in deep proxies.
	data = $state.raw<T | undefined>(undefined);
	error = $state<string | null>(null);
	/** HTTP status of the last failure (0 for network errors), for "not found" pages. */
	errorStatus = $state<number | null>(null);
	loading = $state(false);
	updatedAt = $state<Date | null>(null);

	#fetcher: Fetcher<T> | null = null;
	#controller: AbortController | null = null;

	/**
	 * Starts loading with a new fetcher (new page, new key); the old data stays until the answer.
	 * `started` is a request a loader already sent for the same thing: its answer is used instead of a second call.
	 */
	run(fetcher: Fetcher<T>, started?: Promise<T>): Promise<void> {
		return untrack(() => {
			this.#fetcher = fetcher;
			return this.#load(false, started);
		});
	}

	/** Reloads with the last fetcher without showing the loading state; skipped while a load is running. */
	refresh(): Promise<void> {
		return untrack(() => (this.#controller ? Promise.resolve() : this.#load(true)));
	}

	/** Reloads with the last fetcher, showing the loading state (the Retry button). */
	reload(): Promise<void> {
		return untrack(() => this.#load(false));
	}

	abort(): void {
		this.#controller?.abort();
		this.#controller = null;
	}

	async #load(quiet: boolean, started?: Promise<T>): Promise<void> {
		const fetcher = this.#fetcher;
		if (!fetcher) return;
		this.abort();
		const controller = new AbortController();
		this.#controller = controller;
		if (!quiet) this.loading = true;
		try {
			const data = await (started ?? fetcher(controller.signal));
			if (controller.signal.aborted) return;
			this.data = data;
			this.error = null;
			this.errorStatus = null;
			this.updatedAt = new Date();
		} catch (err) {
			if (controller.signal.aborted) return;
			this.error = err instanceof Error ? err.message : String(err);
			this.errorStatus = err instanceof ApiError ? err.status : null;
		} finally {
			if (this.#controller === controller) {
				this.#controller = null;
				this.loading = false;
			}
		}
	}
}

/** A request started by a loader, to hand to `Resource.run`; marked handled so a failure is reported once, by the page. */
export function prefetch<T>(request: Promise<T>): Promise<T> {
	request.catch(() => {});
	return request;
}
