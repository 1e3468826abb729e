import { RANGES, type Range } from '$lib/filters';
import type { PageLoad } from './$types';

const STORAGE_KEY = 'pystrument.range';

function isRange(value: string | null): value is Range {
	return value !== null && value !== 'custom' && (RANGES as readonly string[]).includes(value);
}

function iso(value: string | null): string {
	if (!value) return '';
	const t = Date.parse(value);
	return Number.isNaN(t) ? '' : new Date(t).toISOString();
}

/**
 * The range comes from the URL (a preset, or `from`/`to` brushed on a chart), else the last preset chosen
 * here (remembered), else `null`: the page then picks the smallest preset holding the project's latest data.
 */
export const load: PageLoad = ({ url }) => {
	const asked = url.searchParams.get('range');
	const saved = typeof localStorage === 'undefined' ? null : localStorage.getItem(STORAGE_KEY);
	const from = iso(url.searchParams.get('from'));
	const to = iso(url.searchParams.get('to'));
	const custom = from !== '' && to !== '' && from < to;
	const range: Range | null = custom ? 'custom' : isRange(asked) ? asked : isRange(saved) ? saved : null;
	if (isRange(asked) && typeof localStorage !== 'undefined') localStorage.setItem(STORAGE_KEY, asked);
	return {
		project: url.searchParams.get('project'),
		range,
		from: custom ? from : '',
		to: custom ? to : '',
		service: url.searchParams.get('service') ?? ''
	};
};
