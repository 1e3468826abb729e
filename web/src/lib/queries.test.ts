import { describe, expect, it } from 'vitest';
import type { Span } from './api';
import { repeatCounts, repeatedQueries, shorten, spanLabel, statementOf } from './queries';

const span = (id: string, name: string, attributes: Record<string, unknown> = {}, duration = 0.001) =>
	({ span_id: id, name, attributes, duration }) as unknown as Span;

describe('DB span labels and repeated queries', () => {
	it('labels a DB span by its statement, shortened', () => {
		expect(spanLabel(span('a', 'SELECT', { 'db.statement': 'SELECT id\n  FROM orders WHERE id = ?' }))).toBe('SELECT id FROM orders WHERE id = ?');
		expect(spanLabel(span('b', 'SELECT', { 'db.query.text': 'SELECT 1' }))).toBe('SELECT 1');
		expect(spanLabel(span('c', 'app.views.index'))).toBe('app.views.index');
		expect(shorten('x'.repeat(200), 10)).toBe('xxxxxxxxx…');
		expect(statementOf(span('d', 'q', { 'db.statement': '   ' }))).toBeNull();
	});
	it('groups identical statements, most repeated first', () => {
		const q = 'SELECT * FROM order_items WHERE order_id = ?';
		const spans = [
			...Array.from({ length: 25 }, (_, i) => span(`n${i}`, 'SELECT', { 'db.statement': q }, 0.002)),
			span('o1', 'SELECT', { 'db.statement': 'SELECT 1' }),
			span('p1', 'INSERT', { 'db.statement': 'INSERT INTO t VALUES (1)' }),
			span('p2', 'INSERT', { 'db.statement': 'INSERT INTO t VALUES (1)' })
		];
		const groups = repeatedQueries(spans);
		expect(groups.map((g) => [g.statement, g.count])).toEqual([
			[q, 25],
			['INSERT INTO t VALUES (1)', 2]
		]);
		expect(groups[0]!.totalMs).toBeCloseTo(50);
		expect(repeatCounts(spans).get('n3')).toBe(25);
		expect(repeatCounts(spans).has('o1')).toBe(false);
	});
});
