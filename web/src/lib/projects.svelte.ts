/**
 * The project list shared by the header's project selector and the pages, and the "current" project
 * (the last one opened), remembered in localStorage so Dashboard/Monitor/Analyses open where you were.
 *
 * URLs address a project by its stable numeric id (`/projects/12/monitor`), never by its key: the key is
 * an ingest credential and changes on "Rotate key". The API is addressed by key (`project_key`), so pages
 * resolve id → key here, from the session-authenticated project list: `projectKeyFor(id)`,
 * `projectHref(project, '/monitor')`, and `projects.resolve(param)` for a route's `[project]` parameter.
 */
import { api, type Project } from './api';

const STORAGE_KEY = 'pystrument.project';
const LIST_SIZE = 100;
/** At most this many pages of the list are read (10,000 projects). */
const MAX_PAGES = 100;

export type ProjectRef = Pick<Project, 'id'> | number | string;

/** What a route's `[project]` parameter names: a project (by id), an old key link to redirect, or nothing. */
export type Resolved =
	| { kind: 'found'; id: number; key: string; project: Project }
	| { kind: 'redirect'; id: number }
	| { kind: 'missing'; error: string | null };

function idOf(ref: ProjectRef): string {
	return typeof ref === 'object' ? String(ref.id) : String(ref);
}

/** `/projects/{id}{rest}`, e.g. `projectHref(p, '/monitor?route=%2F')`. */
export function projectHref(ref: ProjectRef, rest = ''): string {
	return `/projects/${encodeURIComponent(idOf(ref))}${rest}`;
}

/** The path of `url` with its `/projects/{anything}` prefix addressing project `id` instead (query kept). */
export function withProjectId(pathname: string, search: string, id: number): string {
	return pathname.replace(/^\/projects\/[^/]+/, `/projects/${id}`) + search;
}

class Projects {
	items = $state<Project[]>([]);
	loaded = $state(false);
	error = $state<string | null>(null);
	#current = $state<string | null>(null);
	#loading: Promise<void> | null = null;

	constructor() {
		if (typeof localStorage !== 'undefined') this.#current = localStorage.getItem(STORAGE_KEY);
	}

	/** The current project's id: the remembered one if it still exists, else the newest project. */
	get currentId(): number | null {
		const remembered = this.#current ? this.find(this.#current) : undefined;
		if (remembered) return remembered.id;
		if (this.#current && !this.loaded && /^\d+$/.test(this.#current)) return Number(this.#current);
		return this.items[0]?.id ?? null;
	}

	/** The current project's key (for API calls), as `currentId` picks it. */
	get current(): string | null {
		const id = this.currentId;
		return id === null ? null : (this.byId(id)?.project_key ?? null);
	}

	/** Remember a project (by id, or by key: stored as its id once the list knows it). */
	set current(ref: number | string | null) {
		const project = ref === null ? undefined : this.find(String(ref));
		const value = ref === null ? null : project ? String(project.id) : String(ref);
		this.#current = value;
		if (typeof localStorage === 'undefined') return;
		if (value) localStorage.setItem(STORAGE_KEY, value);
		else localStorage.removeItem(STORAGE_KEY);
	}

	/** Remember the current project explicitly, so a new project (the newest) does not become current. */
	pin(): void {
		const id = this.currentId;
		if (id !== null) this.current = id;
	}

	byKey(key: string | null | undefined): Project | undefined {
		return key ? this.items.find((p) => p.project_key === key) : undefined;
	}

	byId(id: number | string | null | undefined): Project | undefined {
		if (id === null || id === undefined || !/^\d+$/.test(String(id))) return undefined;
		const n = Number(id);
		return this.items.find((p) => p.id === n);
	}

	/** A project by id (digits) or by key. */
	find(ref: string | null | undefined): Project | undefined {
		if (!ref) return undefined;
		return /^\d+$/.test(ref) ? this.byId(ref) : this.byKey(ref);
	}

	/** Loads the list once (concurrent callers share the request); `reload()` after a change. */
	ensure(): Promise<void> {
		if (this.loaded) return Promise.resolve();
		return (this.#loading ??= this.reload());
	}

	async reload(): Promise<void> {
		try {
			const all: Project[] = [];
			for (let page = 1; page <= MAX_PAGES; page++) {
				const chunk = await api.listProjects({ page, size: LIST_SIZE });
				all.push(...chunk.projects);
				if (chunk.projects.length < LIST_SIZE || all.length >= chunk.total) break;
			}
			this.items = all;
			this.error = null;
		} catch (err) {
			this.error = err instanceof Error ? err.message : String(err);
		} finally {
			this.loaded = true;
			this.#loading = null;
		}
	}

	/**
	 * A route's `[project]` parameter: an id of a listed project is found; an (old) key of a listed project
	 * asks for a redirect to its id URL; anything else is missing (after one fresh read of the list, in
	 * case the project was created elsewhere).
	 */
	async resolve(param: string): Promise<Resolved> {
		await this.ensure();
		let project = this.find(param);
		if (!project && !this.error) {
			await this.reload();
			project = this.find(param);
		}
		if (!project) return { kind: 'missing', error: this.error };
		if (String(project.id) !== param) return { kind: 'redirect', id: project.id };
		return { kind: 'found', id: project.id, key: project.project_key, project };
	}

	/** After a key rotation the project lives on under its new key (its id, and so its URLs, stay). */
	renameKey(oldKey: string, newKey: string): void {
		this.items = this.items.map((p) => (p.project_key === oldKey ? { ...p, project_key: newKey } : p));
	}
}

export const projects = new Projects();

/** The API key of the project with this id, if the (loaded) list has it. */
export function projectKeyFor(id: number | string): string | undefined {
	return projects.byId(id)?.project_key;
}
