import type { PageLoad } from './$types';

export const load: PageLoad = ({ url }) => {
	const s = url.searchParams;
	const get = (k: string) => s.get(k)?.trim() || null;
	return {
		a: get('a'),
		b: get('b'),
		route: get('route'),
		service: get('service'),
		aFrom: get('a_from'),
		aTo: get('a_to'),
		bFrom: get('b_from'),
		bTo: get('b_to')
	};
};
