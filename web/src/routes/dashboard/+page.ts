import { RANGES, type Range } from '$lib/filters';
import type { PageLoad } from './$types';

const STORAGE_KEY = 'pystrument.range';

function isRange(value: string | null): value is Range {
	return value !== null && value !== 'custom' && (RANGES as readonly string[]).includes(value);
}

// The range comes from the URL, else the last one chosen here (remembered), else the last 24 hours.
export const load: PageLoad = ({ url }) => {
	const asked = url.searchParams.get('range');
	const saved = typeof localStorage === 'undefined' ? null : localStorage.getItem(STORAGE_KEY);
	const range: Range = isRange(asked) ? asked : isRange(saved) ? saved : '24h';
	if (isRange(asked) && typeof localStorage !== 'undefined') localStorage.setItem(STORAGE_KEY, asked);
	return { project: url.searchParams.get('project'), range };
};
