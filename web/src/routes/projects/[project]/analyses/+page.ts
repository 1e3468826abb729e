import type { PageLoad } from './$types';

export const load: PageLoad = ({ url }) => {
	const n = Number.parseInt(url.searchParams.get('page') ?? '1', 10);
	return { trace: url.searchParams.get('trace') ?? '', page: Number.isFinite(n) && n > 0 ? n : 1 };
};
