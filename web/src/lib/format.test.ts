import { describe, expect, it } from 'vitest';
import {
	formatAttribute,
	formatAxisDuration,
	formatBucket,
	formatCount,
	formatMsValue,
	formatPercent,
	formatRate,
	formatDateTime,
	formatDuration,
	formatMs,
	formatRelative,
	formatSpanStatus,
	httpStatusTone,
	shortId,
	spanStatusTone,
	toMs
} from './format';

describe('formatDuration', () => {
	it('picks the unit by size', () => {
		expect(formatDuration(0.00042)).toBe('0.42 ms');
		expect(formatDuration(0.0123)).toBe('12.3 ms');
		expect(formatDuration(0.25)).toBe('250 ms');
		expect(formatDuration(0.9996)).toBe('1000 ms');
		expect(formatDuration(1.25)).toBe('1.25 s');
		expect(formatDuration(125)).toBe('2m 5s');
		expect(formatDuration(0)).toBe('0.00 ms');
	});

	it('shows a dash for missing or invalid values', () => {
		expect(formatDuration(null)).toBe('—');
		expect(formatDuration(undefined)).toBe('—');
		expect(formatDuration(Number.NaN)).toBe('—');
		expect(toMs(Number.POSITIVE_INFINITY)).toBeNull();
	});
});

describe('formatMs', () => {
	it('formats seconds as milliseconds with precision by size', () => {
		expect(formatMs(0.0012345)).toBe('1.23');
		expect(formatMs(0.0456)).toBe('45.6');
		expect(formatMs(1.25)).toBe('1,250');
		expect(formatMs(null)).toBe('—');
	});
});

describe('formatDateTime', () => {
	it('renders an ISO timestamp in the given zone', () => {
		expect(formatDateTime('2024-08-24T10:15:00Z', 'en', 'UTC')).toBe('08/24/2024, 10:15:00');
		expect(formatDateTime('2024-08-24T10:15:00Z', 'en', 'Asia/Shanghai')).toBe('08/24/2024, 18:15:00');
	});
	it('shows a dash for missing or unparsable input', () => {
		expect(formatDateTime(null)).toBe('—');
		expect(formatDateTime('not a date')).toBe('—');
	});
});

describe('formatRelative', () => {
	const now = Date.parse('2024-08-24T10:15:00Z');
	it('uses the largest fitting unit', () => {
		expect(formatRelative('2024-08-24T10:14:30Z', 'en', now)).toBe('30 seconds ago');
		expect(formatRelative('2024-08-24T10:10:00Z', 'en', now)).toBe('5 minutes ago');
		expect(formatRelative('2024-08-24T07:15:00Z', 'en', now)).toBe('3 hours ago');
		expect(formatRelative('2024-08-22T10:15:00Z', 'en', now)).toBe('2 days ago');
		expect(formatRelative('2024-08-24T10:15:00Z', 'en', now)).toBe('now');
	});
	it('localizes', () => {
		expect(formatRelative('2024-08-24T10:10:00Z', 'zh-CN', now)).toBe('5分钟前');
	});
	it('handles missing input', () => {
		expect(formatRelative(null, 'en', now)).toBe('—');
	});
});

describe('status tones', () => {
	it('maps HTTP codes', () => {
		expect(httpStatusTone(200)).toBe('ok');
		expect(httpStatusTone(302)).toBe('ok');
		expect(httpStatusTone(404)).toBe('warn');
		expect(httpStatusTone(503)).toBe('error');
		expect(httpStatusTone(null)).toBe('neutral');
	});
	it('maps OTel span statuses', () => {
		expect(spanStatusTone('STATUS_CODE_ERROR')).toBe('error');
		expect(spanStatusTone('ERROR')).toBe('error');
		expect(spanStatusTone('OK')).toBe('ok');
		expect(spanStatusTone('UNSET')).toBe('neutral');
		expect(spanStatusTone(2)).toBe('error');
		expect(spanStatusTone(0)).toBe('neutral');
		expect(spanStatusTone(1)).toBe('ok');
		expect(spanStatusTone(500)).toBe('error');
	});
});

describe('formatSpanStatus', () => {
	it('names OTel status codes', () => {
		expect(formatSpanStatus(0)).toBe('UNSET');
		expect(formatSpanStatus(1)).toBe('OK');
		expect(formatSpanStatus(2)).toBe('ERROR');
		expect(formatSpanStatus('STATUS_CODE_ERROR')).toBe('ERROR');
		expect(formatSpanStatus('ok')).toBe('OK');
		expect(formatSpanStatus(null)).toBe('—');
	});
});

describe('shortId and formatAttribute', () => {
	it('shortens long ids only', () => {
		expect(shortId('0123456789abcdef0123')).toBe('01234567…0123');
		expect(shortId('short')).toBe('short');
	});
	it('renders attribute values', () => {
		expect(formatAttribute('x')).toBe('x');
		expect(formatAttribute(12)).toBe('12');
		expect(formatAttribute(true)).toBe('true');
		expect(formatAttribute(['a', 1])).toBe('["a",1]');
		expect(formatAttribute(null)).toBe('—');
	});
});

describe('formatPercent, formatRate, formatCount', () => {
	it('formats shares with precision by size', () => {
		expect(formatPercent(0)).toBe('0%');
		expect(formatPercent(0.0052)).toBe('0.52%');
		expect(formatPercent(0.125)).toBe('12.5%');
		expect(formatPercent(1)).toBe('100%');
		expect(formatPercent(null)).toBe('—');
	});
	it('switches rates to per minute under one a second', () => {
		expect(formatRate(12.345)).toBe('12.3/s');
		expect(formatRate(250)).toBe('250/s');
		expect(formatRate(0.05)).toBe('3.0/min');
		expect(formatRate(0.5)).toBe('30/min');
		expect(formatRate(0.001)).toBe('3.6/h');
		expect(formatRate(7 / 86_400)).toBe('0.3/h');
		expect(formatRate(1 / 86_400)).toBe('0.04/h');
		expect(formatRate(1e-7)).toBe('<0.01/h');
		expect(formatRate(0)).toBe('0/s');
		expect(formatRate(undefined)).toBe('—');
	});
	it('groups counts by locale', () => {
		expect(formatCount(1234567)).toBe('1,234,567');
		expect(formatCount(1234, 'zh-CN')).toBe('1,234');
		expect(formatCount(Number.NaN)).toBe('—');
		expect(formatMsValue(12.5)).toBe('12.5 ms');
		expect(formatMsValue(null)).toBe('—');
	});
});

describe('formatBucket and formatAxisDuration', () => {
	it('names bucket lengths in the largest whole unit', () => {
		expect(formatBucket(30)).toBe('30 s');
		expect(formatBucket(300)).toBe('5 min');
		expect(formatBucket(3600)).toBe('1 h');
		expect(formatBucket(86_400)).toBe('1 d');
		expect(formatBucket(90)).toBe('90 s');
		expect(formatBucket(0)).toBe('—');
	});
	it('labels the axis origin as 0', () => {
		expect(formatAxisDuration(0)).toBe('0');
		expect(formatAxisDuration(0.25)).toBe('250 ms');
	});
});

describe('rates in one unit, localized', () => {
	it('picks the unit from the largest value and keeps it for every label', async () => {
		const { formatRateIn, rateUnit, formatRate, formatBucket } = await import('./format');
		expect(rateUnit(30)).toBe('s');
		expect(rateUnit(0.5)).toBe('min');
		expect(rateUnit(0.001)).toBe('h');
		const unit = rateUnit(32);
		expect([0, 10, 20, 30].map((v) => formatRateIn(v, unit))).toEqual(['0/s', '10/s', '20/s', '30/s']);
		expect(formatRateIn(0.5, 's')).toBe('0.5/s');
		expect(formatRate(30)).toBe('30.0/s');
		expect(formatRate(30, 'zh-CN')).toBe('30.0/秒');
		expect(formatRate(0.01, 'zh-CN')).toBe('0.6/分钟');
		expect(formatBucket(300, 'zh-CN')).toBe('5 分钟');
		expect(formatBucket(300)).toBe('5 min');
	});
});

describe('one 24-hour time format in every locale', () => {
	it('never prints AM/PM', async () => {
		const { formatTime, formatDateTime } = await import('./format');
		const iso = '2024-08-24T15:04:05Z';
		expect(formatTime(iso, 'en')).toMatch(/^\d{2}:04:05$/);
		expect(formatDateTime(iso, 'en', 'UTC')).toContain('15:04:05');
		expect(formatDateTime('2024-08-24T00:30:00Z', 'en', 'UTC')).toContain('00:30:00');
		expect(formatDateTime(iso, 'zh-CN', 'UTC')).toContain('15:04:05');
		expect(formatDateTime(iso, 'en', 'UTC')).not.toMatch(/AM|PM/);
	});
});
