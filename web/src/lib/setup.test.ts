import { describe, expect, it } from 'vitest';
import { SETUP_KINDS, setupSnippet } from './setup';

const ORIGIN = 'http://127.0.0.1:8000';
const KEY = 'proj_0123456789abcdef01234567';

describe('setupSnippet', () => {
	it('puts the server and the key in every snippet', () => {
		for (const kind of SETUP_KINDS) {
			const text = setupSnippet(kind, ORIGIN, KEY, 'flask');
			expect(text, kind).toContain(KEY);
			expect(text, kind).toContain(ORIGIN);
		}
	});
	it('uses the standard OTel variables for zero-code, with the framework instrumentation', () => {
		const text = setupSnippet('zero-code', ORIGIN, KEY, 'django');
		expect(text).toContain(`OTEL_EXPORTER_OTLP_HEADERS=x-project-key=${KEY}`);
		expect(text).toContain('OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf');
		expect(text).toContain('opentelemetry-instrumentation-django');
		expect(text).toContain('opentelemetry-instrument python app.py');
	});
	it('calls pystrument.configure in code, and sets the collector variables', () => {
		for (const kind of ['flask', 'django', 'fastapi'] as const) {
			const text = setupSnippet(kind, ORIGIN, KEY);
			expect(text).toContain('pystrument.configure(tracer_provider=provider)');
			expect(text).toContain(`endpoint="${ORIGIN}/v1/traces"`);
		}
		expect(setupSnippet('fastapi', ORIGIN, KEY)).toContain('FastAPIInstrumentor.instrument_app(app)');
		const collector = setupSnippet('collector', ORIGIN, KEY);
		expect(collector).toContain(`PYSTRUMENT_ENDPOINT=${ORIGIN}`);
		expect(collector).toContain(`PYSTRUMENT_PROJECT_KEY=${KEY}`);
		expect(collector).toContain('otel-collector.yaml');
	});
});
