import { describe, expect, it } from 'vitest';
import { activeFilterCount, EMPTY_FILTERS, filtersToSearch, fromLocalInput, parseFilters, recordQuery, statsQuery, statsWindow, timeWindow, toLocalInput } from './filters';

const NOW = Date.parse('2024-08-24T12:00:00Z');

describe('parseFilters / filtersToSearch', () => {
	it('round-trips through the URL, leaving defaults out', () => {
		const f = parseFilters(new URLSearchParams('route=/users/{id}&method=get&status=5xx&min=100&max=2500&range=1h&sort=duration&order=asc&page=3&service=shop&path=users'));
		expect(f).toEqual({ ...EMPTY_FILTERS, route: '/users/{id}', path: 'users', method: 'GET', status: '5xx', minMs: 100, maxMs: 2500, range: '1h', service: 'shop', sort: 'duration', order: 'asc', page: 3 });
		expect(parseFilters(new URLSearchParams(filtersToSearch(f).slice(1)))).toEqual(f);
		expect(filtersToSearch(EMPTY_FILTERS)).toBe('');
		expect(activeFilterCount(f)).toBe(8);
		expect(activeFilterCount(EMPTY_FILTERS)).toBe(0);
	});
	it('ignores invalid values', () => {
		const f = parseFilters(new URLSearchParams('status=7xx&min=-4&max=abc&range=2y&sort=name&order=up&page=0&start=nope'));
		expect(f).toEqual(EMPTY_FILTERS);
	});
	it('keeps a custom range only with its ends', () => {
		const f = parseFilters(new URLSearchParams('range=custom&start=2024-08-24T10:00:00Z'));
		expect(f.range).toBe('custom');
		expect(f.start).toBe('2024-08-24T10:00:00.000Z');
		expect(filtersToSearch(f)).toBe('?range=custom&start=2024-08-24T10%3A00%3A00.000Z');
		expect(filtersToSearch({ ...f, range: '1h' })).toBe('?range=1h');
	});
});

describe('API queries', () => {
	it('turns filters into record query parameters (ms → s, presets → start)', () => {
		const f = { ...EMPTY_FILTERS, route: '/a', method: 'POST', status: '4xx', minMs: 250, maxMs: null, range: '1h' as const, page: 2 };
		expect(recordQuery('proj_x', f, 20, NOW)).toEqual({
			project_key: 'proj_x',
			page: 2,
			size: 20,
			sort: 'timestamp',
			order: 'desc',
			start: '2024-08-24T11:00:00.000Z',
			route: '/a',
			method: 'POST',
			status_class: '4xx',
			min_duration: 0.25
		});
		expect(recordQuery('k', { ...EMPTY_FILTERS, status: 'error' }, 10, NOW).error).toBe(true);
	});
	it('gives statistics a closed window', () => {
		expect(statsWindow('24h', '', '', NOW)).toEqual({ start: '2024-08-23T12:00:00.000Z', end: '2024-08-24T12:00:00.000Z' });
		expect(statsWindow('custom', '', '2024-08-20T00:00:00.000Z', NOW)).toEqual({ start: '2024-07-21T00:00:00.000Z', end: '2024-08-20T00:00:00.000Z' });
		expect(timeWindow('custom', '', '', NOW)).toEqual({ start: undefined, end: undefined });
		const q = statsQuery('k', { route: '/r', method: '', service: 's', range: '15m', start: '', end: '' }, NOW);
		expect(q).toEqual({ project_key: 'k', start: '2024-08-24T11:45:00.000Z', end: '2024-08-24T12:00:00.000Z', route: '/r', service: 's' });
	});
	it('converts datetime-local values both ways', () => {
		const iso = '2024-08-24T10:15:00.000Z';
		expect(fromLocalInput(toLocalInput(iso))).toBe(iso);
		expect(toLocalInput('bad')).toBe('');
		expect(fromLocalInput('')).toBe('');
	});
});
