import { error, redirect } from '@sveltejs/kit';
import { projects, withProjectId } from '$lib/projects.svelte';
import type { LayoutLoad } from './$types';

/**
 * Every page under `/projects/[project]` addresses the project by its stable id; the API wants its key,
 * resolved here from the project list (so a key rotation breaks no bookmark). An old link by key is
 * redirected to the id URL while the key still names a project.
 */
export const load: LayoutLoad = async ({ params, url, depends }) => {
	depends('app:project');
	const resolved = await projects.resolve(params.project);
	if (resolved.kind === 'redirect') redirect(307, withProjectId(url.pathname, url.search, resolved.id));
	if (resolved.kind === 'missing') error(resolved.error ? 503 : 404, resolved.error ?? 'project not found');
	return { projectId: resolved.id, key: resolved.key };
};
