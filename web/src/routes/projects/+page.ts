import type { PageLoad } from './$types';

export const load: PageLoad = ({ url }) => ({ page: pageParam(url) });

/** The `?page=` query parameter as a positive integer (1 when absent or invalid). */
function pageParam(url: URL): number {
	const n = Number.parseInt(url.searchParams.get('page') ?? '1', 10);
	return Number.isFinite(n) && n > 0 ? n : 1;
}
