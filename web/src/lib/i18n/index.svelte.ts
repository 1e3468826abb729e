/** The UI language: English by default, switchable to Chinese, remembered in localStorage. */
import { en, type MessageKey, type Messages } from './en';
import { zh } from './zh';

export type Locale = 'en' | 'zh';
export const LOCALES: Record<Locale, { label: string; messages: Messages; intl: string }> = {
	en: { label: 'English', messages: en, intl: 'en' },
	zh: { label: '中文', messages: zh, intl: 'zh-CN' }
};
const STORAGE_KEY = 'pystrument.locale';

function isLocale(value: unknown): value is Locale {
	return typeof value === 'string' && value in LOCALES;
}

/** Fills `{name}` placeholders; unknown placeholders are left as written. */
export function interpolate(template: string, params?: Record<string, string | number>): string {
	if (!params) return template;
	return template.replace(/\{(\w+)\}/g, (whole, name: string) => (name in params ? String(params[name]) : whole));
}

class I18n {
	locale = $state<Locale>('en');

	constructor() {
		if (typeof localStorage !== 'undefined') {
			const saved = localStorage.getItem(STORAGE_KEY);
			if (isLocale(saved)) this.locale = saved;
		}
	}

	/** The BCP 47 tag for Intl formatters. */
	get intl(): string {
		return LOCALES[this.locale].intl;
	}

	set(locale: Locale): void {
		this.locale = locale;
		if (typeof localStorage !== 'undefined') localStorage.setItem(STORAGE_KEY, locale);
		if (typeof document !== 'undefined') document.documentElement.lang = this.intl;
	}

	t = (key: MessageKey, params?: Record<string, string | number>): string =>
		interpolate(LOCALES[this.locale].messages[key] ?? en[key] ?? key, params);
}

export const i18n = new I18n();
export const t = i18n.t;
export type { MessageKey };

/** A value the server sends (a bottleneck type, a status) in the UI language when there is a message `prefix.value`, else as sent. */
export function tValue(prefix: string, value: string): string {
	const key = `${prefix}.${value}`;
	return key in en ? t(key as MessageKey) : value;
}
