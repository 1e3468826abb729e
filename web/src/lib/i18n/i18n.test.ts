import { describe, expect, it } from 'vitest';
import { en } from './en';
import { zh } from './zh';
import { interpolate } from './index.svelte';

describe('messages', () => {
	it('has the same keys in every language, none empty', () => {
		expect(Object.keys(zh).sort()).toEqual(Object.keys(en).sort());
		for (const [key, value] of Object.entries(zh)) expect(value, key).not.toBe('');
	});

	it('fills placeholders and leaves unknown ones', () => {
		expect(interpolate(en['common.pageOf'], { page: 2, pages: 5, total: 93 })).toBe('Page 2 of 5 · 93 total');
		expect(interpolate('a {x} {y}', { x: 1 })).toBe('a 1 {y}');
		expect(interpolate('plain')).toBe('plain');
	});
});
