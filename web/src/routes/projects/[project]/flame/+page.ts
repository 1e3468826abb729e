import { rangeOf } from '$lib/flame-api';
import type { PageLoad } from './$types';

export const load: PageLoad = ({ url }) => {
	const s = url.searchParams;
	const mode = s.get('mode') === 'icicle' ? ('icicle' as const) : ('flame' as const);
	return {
		route: s.get('route') || null,
		service: s.get('service') || null,
		range: rangeOf(s),
		mode,
		q: s.get('q') ?? ''
	};
};
