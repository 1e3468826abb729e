import { parseFilters } from '$lib/filters';
import type { PageLoad } from './$types';

export const load: PageLoad = ({ params, url }) => ({ key: params.key, filters: parseFilters(url.searchParams) });
