/** Pure formatting helpers for durations, times and statuses, shared by every page. */

const DASH = '—';

/** Milliseconds from the API's seconds, or null when absent/invalid. */
export function toMs(seconds: number | null | undefined): number | null {
	if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return null;
	return seconds * 1000;
}

/** A duration given in seconds, shown in the unit a person reads fastest: `0.42 ms`, `12.3 ms`, `250 ms`, `1.25 s`. */
export function formatDuration(seconds: number | null | undefined): string {
	const ms = toMs(seconds);
	if (ms === null) return DASH;
	const abs = Math.abs(ms);
	if (abs < 1) return `${ms.toFixed(2)} ms`;
	if (abs < 100) return `${ms.toFixed(1)} ms`;
	if (abs < 1000) return `${Math.round(ms)} ms`;
	if (abs < 60_000) return `${(ms / 1000).toFixed(2)} s`;
	const totalSeconds = Math.round(ms / 1000);
	return `${Math.floor(totalSeconds / 60)}m ${totalSeconds % 60}s`;
}

/** Milliseconds as a plain number for table columns (`12.3`, `1,250`). */
export function formatMs(seconds: number | null | undefined, locale = 'en'): string {
	const ms = toMs(seconds);
	if (ms === null) return DASH;
	const digits = Math.abs(ms) < 10 ? 2 : Math.abs(ms) < 100 ? 1 : 0;
	return new Intl.NumberFormat(locale, { minimumFractionDigits: digits, maximumFractionDigits: digits }).format(ms);
}

function parse(iso: string | null | undefined): Date | null {
	if (!iso) return null;
	const d = new Date(iso);
	return Number.isNaN(d.getTime()) ? null : d;
}

// Building an Intl formatter costs far more than using one: keep one per locale and zone.
const dateTimeFormats = new Map<string, Intl.DateTimeFormat>();

function dateTimeFormat(locale: string, timeZone?: string): Intl.DateTimeFormat {
	const key = `${locale}|${timeZone ?? ''}`;
	let f = dateTimeFormats.get(key);
	if (!f) {
		f = new Intl.DateTimeFormat(locale, {
			year: 'numeric',
			month: '2-digit',
			day: '2-digit',
			hour: '2-digit',
			minute: '2-digit',
			second: '2-digit',
			hourCycle: 'h23',
			timeZone
		});
		dateTimeFormats.set(key, f);
	}
	return f;
}

/** A timestamp as local date and time with seconds, or a dash. */
export function formatDateTime(iso: string | null | undefined, locale = 'en', timeZone?: string): string {
	const d = parse(iso);
	if (!d) return DASH;
	return dateTimeFormat(locale, timeZone).format(d);
}

/** "5 minutes ago" style text in the given locale; `now` is injectable for tests. */
export function formatRelative(iso: string | null | undefined, locale = 'en', now: number = Date.now()): string {
	const d = parse(iso);
	if (!d) return DASH;
	const diffSeconds = Math.round((d.getTime() - now) / 1000);
	const abs = Math.abs(diffSeconds);
	const rtf = new Intl.RelativeTimeFormat(locale, { numeric: 'auto' });
	if (abs < 60) return rtf.format(diffSeconds, 'second');
	if (abs < 3600) return rtf.format(Math.round(diffSeconds / 60), 'minute');
	if (abs < 86_400) return rtf.format(Math.round(diffSeconds / 3600), 'hour');
	return rtf.format(Math.round(diffSeconds / 86_400), 'day');
}

export type Tone = 'ok' | 'warn' | 'error' | 'neutral';

/** Colour class of an HTTP status code (a request's outcome). */
export function httpStatusTone(status: number | null | undefined): Tone {
	if (status === null || status === undefined || !Number.isFinite(status)) return 'neutral';
	if (status >= 500) return 'error';
	if (status >= 400) return 'warn';
	return 'ok';
}

/** Colour class of a span status, which may be an OTel status name/number or an HTTP code. */
export function spanStatusTone(status: string | number | null | undefined): Tone {
	if (status === null || status === undefined) return 'neutral';
	if (typeof status === 'number') return status === 2 ? 'error' : status === 1 ? 'ok' : status >= 100 ? httpStatusTone(status) : 'neutral';
	const s = status.toUpperCase();
	if (s.includes('ERROR')) return 'error';
	if (s.includes('OK')) return 'ok';
	return 'neutral';
}

const OTEL_STATUS = ['UNSET', 'OK', 'ERROR'];

/** A span status as a word: OTel's numeric codes 0/1/2 become UNSET/OK/ERROR, `STATUS_CODE_` prefixes are dropped. */
export function formatSpanStatus(status: string | number | null | undefined): string {
	if (status === null || status === undefined || status === '') return DASH;
	if (typeof status === 'number') return OTEL_STATUS[status] ?? String(status);
	return status.replace(/^STATUS_CODE_/i, '').toUpperCase();
}

/** Shortens a long identifier for a table cell: `abcdef…7890`. */
export function shortId(id: string, head = 8, tail = 4): string {
	if (id.length <= head + tail + 1) return id;
	return `${id.slice(0, head)}…${id.slice(-tail)}`;
}

/** Renders an attribute value for the details panel. */
export function formatAttribute(value: unknown): string {
	if (value === null || value === undefined) return DASH;
	if (typeof value === 'string') return value;
	if (typeof value === 'number' || typeof value === 'boolean') return String(value);
	return JSON.stringify(value);
}

/** A share (0..1) as a percentage: `0%`, `0.52%`, `12.5%`, `100%`. */
export function formatPercent(share: number | null | undefined, locale = 'en'): string {
	if (share === null || share === undefined || !Number.isFinite(share)) return DASH;
	const pct = share * 100;
	const abs = Math.abs(pct);
	const digits = pct === 0 || abs >= 99.95 ? 0 : abs < 1 ? 2 : 1;
	return `${new Intl.NumberFormat(locale, { minimumFractionDigits: digits, maximumFractionDigits: digits }).format(pct)}%`;
}

export type RateUnit = 's' | 'min' | 'h';

const RATE_SUFFIX: Record<'en' | 'zh', Record<RateUnit, string>> = {
	en: { s: '/s', min: '/min', h: '/h' },
	zh: { s: '/秒', min: '/分钟', h: '/小时' }
};
const PER: Record<RateUnit, number> = { s: 1, min: 60, h: 3600 };

function lang(locale: string): 'en' | 'zh' {
	return locale.toLowerCase().startsWith('zh') ? 'zh' : 'en';
}

/** The unit that reads best for a rate of `perSecond` (requests/s from 1/s up, per minute from 1/min, else per hour). */
export function rateUnit(perSecond: number): RateUnit {
	const v = Math.abs(perSecond);
	if (v >= 1) return 's';
	if (v * 60 >= 1) return 'min';
	return 'h';
}

/** A rate in a given unit, e.g. one unit for every label of a chart axis: `30/s`, `0.5/s`, `12/min`. */
export function formatRateIn(perSecond: number | null | undefined, unit: RateUnit, locale = 'en'): string {
	if (perSecond === null || perSecond === undefined || !Number.isFinite(perSecond)) return DASH;
	const v = perSecond * PER[unit];
	const abs = Math.abs(v);
	const d = v === 0 || abs >= 100 ? 0 : abs >= 10 ? 0 : abs >= 0.1 ? 1 : 2;
	const text = new Intl.NumberFormat(locale, { maximumFractionDigits: d, minimumFractionDigits: v === 0 ? 0 : Math.min(d, 1) }).format(v);
	return `${text}${RATE_SUFFIX[lang(locale)][unit]}`;
}

/** Requests per second in the unit that reads best: `12.5/s`, `3.0/min`, `0.3/h` (quiet services), `<0.01/h`. */
export function formatRate(perSecond: number | null | undefined, locale = 'en'): string {
	if (perSecond === null || perSecond === undefined || !Number.isFinite(perSecond)) return DASH;
	const suffix = RATE_SUFFIX[lang(locale)];
	if (perSecond === 0) return `0${suffix.s}`;
	const nf = (v: number, d: number) => new Intl.NumberFormat(locale, { maximumFractionDigits: d, minimumFractionDigits: d }).format(v);
	const digits = (v: number) => (v >= 100 ? 0 : v >= 0.1 ? 1 : 2);
	if (Math.abs(perSecond) >= 1) return `${nf(perSecond, perSecond >= 100 ? 0 : 1)}${suffix.s}`;
	const perMinute = perSecond * 60;
	if (perMinute >= 0.1) return `${nf(perMinute, perMinute >= 10 ? 0 : 1)}${suffix.min}`;
	const perHour = perMinute * 60;
	return perHour < 0.01 ? `<0.01${suffix.h}` : `${nf(perHour, digits(perHour))}${suffix.h}`;
}

/** A count with grouping: `1,234` / `1,234`. */
export function formatCount(n: number | null | undefined, locale = 'en'): string {
	if (n === null || n === undefined || !Number.isFinite(n)) return DASH;
	return new Intl.NumberFormat(locale).format(n);
}

/** A milliseconds figure (self time, spans) in the duration style. */
export function formatMsValue(ms: number | null | undefined): string {
	return ms === null || ms === undefined || !Number.isFinite(ms) ? DASH : formatDuration(ms / 1000);
}

const BUCKET_UNITS: Record<'en' | 'zh', [string, string, string, string]> = {
	en: ['d', 'h', 'min', 's'],
	zh: ['天', '小时', '分钟', '秒']
};

/** A time bucket's length in seconds as a short label: `30 s`, `5 min`, `1 h`, `1 d` (`5 分钟` in Chinese). */
export function formatBucket(seconds: number, locale = 'en'): string {
	if (!Number.isFinite(seconds) || seconds <= 0) return DASH;
	const [d, h, min, s] = BUCKET_UNITS[lang(locale)];
	if (seconds % 86_400 === 0) return `${seconds / 86_400} ${d}`;
	if (seconds % 3600 === 0) return `${seconds / 3600} ${h}`;
	if (seconds % 60 === 0) return `${seconds / 60} ${min}`;
	return `${seconds} ${s}`;
}

/** A time of day, 24-hour, in the UI's locale (one format everywhere: `14:05:09`). */
export function formatTime(iso: string | number | null | undefined, locale = 'en'): string {
	if (iso === null || iso === undefined) return DASH;
	const d = new Date(iso);
	if (Number.isNaN(d.getTime())) return DASH;
	return new Intl.DateTimeFormat(locale, { hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23' }).format(d);
}

/** An axis label for a latency in seconds: a plain `0` at the origin, otherwise as `formatDuration`. */
export function formatAxisDuration(seconds: number): string {
	return seconds === 0 ? '0' : formatDuration(seconds);
}
