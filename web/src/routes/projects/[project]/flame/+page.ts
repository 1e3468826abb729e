import { flameTree, QUICK_SAMPLE, rangeOf } from '$lib/flame-api';
import { prefetch } from '$lib/resource.svelte';
import type { PageLoad } from './$types';

// The quick first tree is requested here, before the page mounts, so a deep link's API call overlaps the rendering setup.
export const load: PageLoad = async ({ url, fetch, parent }) => {
	const s = url.searchParams;
	const mode = s.get('mode') === 'icicle' ? ('icicle' as const) : ('flame' as const);
	const route = s.get('route') || null;
	const service = s.get('service') || null;
	const range = rangeOf(s);
	const { key } = await parent();
	return {
		route,
		service,
		range,
		mode,
		q: s.get('q') ?? '',
		quick: prefetch(flameTree({ project_key: key, route, service, start: range.start, end: range.end, sample: QUICK_SAMPLE }, undefined, fetch))
	};
};
