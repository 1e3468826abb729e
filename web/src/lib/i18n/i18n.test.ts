import { describe, expect, it } from 'vitest';
import { en } from './en';
import { zh } from './zh';
import { i18n, interpolate, t, tValue } from './index.svelte';

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

describe('tValue', () => {
	it('translates known server values and passes unknown ones through', () => {
		i18n.set('zh');
		expect(tValue('kind', 'database')).toBe('数据库');
		expect(tValue('severity', 'critical')).toBe('严重');
		expect(tValue('kind', 'quantum')).toBe('quantum');
		i18n.set('en');
		expect(tValue('analysis.status', 'running')).toBe('running');
		expect(t('nav.monitor')).toBe('Performance');
	});
});

describe('composed keys', () => {
	it('exist for every range, setup kind, status, severity and priority the UI shows', async () => {
		const { RANGES } = await import('../filters');
		const { SETUP_KINDS } = await import('../setup');
		const keys = [
			...RANGES.map((r) => `range.${r}`),
			...SETUP_KINDS.map((k) => `setup.note.${k}`),
			...['pending', 'running', 'completed', 'failed'].map((s) => `analysis.status.${s}`),
			...['active', 'paused', 'archived'].map((s) => `projects.status.${s}`),
			...['critical', 'high', 'medium', 'low'].map((s) => `severity.${s}`),
			...['high', 'medium', 'low'].map((s) => `priority.${s}`),
			...['database', 'http', 'cpu', 'blocking', 'serialization', 'template', 'regex', 'other'].map((s) => `kind.${s}`)
		];
		for (const key of keys) expect(en, key).toHaveProperty([key]);
	});
});
