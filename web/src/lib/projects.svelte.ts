/**
 * The project list shared by the header's project selector and the pages, and the "current" project
 * (the last one opened), remembered in localStorage so Dashboard/Monitor/Analyses open where you were.
 */
import { api, type Project } from './api';

const STORAGE_KEY = 'pystrument.project';
const LIST_SIZE = 100;

class Projects {
	items = $state<Project[]>([]);
	loaded = $state(false);
	error = $state<string | null>(null);
	#current = $state<string | null>(null);
	#loading: Promise<void> | null = null;

	constructor() {
		if (typeof localStorage !== 'undefined') this.#current = localStorage.getItem(STORAGE_KEY);
	}

	/** The current project's key: the remembered one if it still exists, else the newest project. */
	get current(): string | null {
		if (this.#current && (!this.loaded || this.items.some((p) => p.project_key === this.#current))) return this.#current;
		return this.items[0]?.project_key ?? null;
	}

	set current(key: string | null) {
		this.#current = key;
		if (typeof localStorage === 'undefined') return;
		if (key) localStorage.setItem(STORAGE_KEY, key);
		else localStorage.removeItem(STORAGE_KEY);
	}

	byKey(key: string | null | undefined): Project | undefined {
		return key ? this.items.find((p) => p.project_key === key) : undefined;
	}

	/** Loads the list once (concurrent callers share the request); `reload()` after a change. */
	ensure(): Promise<void> {
		if (this.loaded) return Promise.resolve();
		return (this.#loading ??= this.reload());
	}

	async reload(): Promise<void> {
		try {
			const page = await api.listProjects({ page: 1, size: LIST_SIZE });
			this.items = page.projects;
			this.error = null;
		} catch (err) {
			this.error = err instanceof Error ? err.message : String(err);
		} finally {
			this.loaded = true;
			this.#loading = null;
		}
	}

	/** After a key rotation the project lives on under its new key. */
	renameKey(oldKey: string, newKey: string): void {
		if (this.#current === oldKey) this.current = newKey;
		this.items = this.items.map((p) => (p.project_key === oldKey ? { ...p, project_key: newKey } : p));
	}
}

export const projects = new Projects();
