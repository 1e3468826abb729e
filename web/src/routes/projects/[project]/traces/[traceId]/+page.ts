import { Api } from '$lib/api';
import { prefetch } from '$lib/resource.svelte';
import type { PageLoad } from './$types';

// The trace is requested here, before the page mounts, so a deep link's API call overlaps the rendering setup.
export const load: PageLoad = async ({ params, url, fetch, parent }) => {
	const { key } = await parent();
	return {
		traceId: params.traceId,
		span: url.searchParams.get('span'),
		record: prefetch(new Api(fetch).getRecord(key, params.traceId))
	};
};
