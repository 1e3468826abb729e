import { projects } from '$lib/projects.svelte';
import type { PageLoad } from './$types';

// `?project=` names the project by id (an old link may carry its key): the API wants the key.
export const load: PageLoad = async ({ params, url }) => {
	const param = url.searchParams.get('project');
	if (param) await projects.ensure();
	return { id: params.id, project: param ? (projects.find(param)?.project_key ?? param) : null };
};
