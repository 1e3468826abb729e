import { rangeOf } from '$lib/flame-api';
import type { PageLoad } from './$types';

export const load: PageLoad = ({ url }) => {
	const s = url.searchParams;
	return {
		name: s.get('name') ?? '',
		file: s.get('file') || null,
		route: s.get('route') || null,
		service: s.get('service') || null,
		range: rangeOf(s)
	};
};
