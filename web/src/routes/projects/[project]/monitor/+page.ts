import { parseFilters } from '$lib/filters';
import type { PageLoad } from './$types';

export const load: PageLoad = ({ url }) => ({ filters: parseFilters(url.searchParams) });
