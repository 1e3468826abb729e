/** Ready-to-paste setup for sending a service's traces to this server, per integration style. */

export const SETUP_KINDS = ['zero-code', 'flask', 'django', 'fastapi', 'collector'] as const;
export type SetupKind = (typeof SETUP_KINDS)[number];

const INSTRUMENTATION: Record<string, string> = {
	flask: 'opentelemetry-instrumentation-flask',
	django: 'opentelemetry-instrumentation-django',
	fastapi: 'opentelemetry-instrumentation-fastapi'
};

/** The tab to open first: the zero-code command, which needs no change to the app. */
export const DEFAULT_SETUP: SetupKind = 'zero-code';

function provider(origin: string, key: string, service: string): string {
	return `from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
import pystrument

provider = TracerProvider(resource=Resource.create({"service.name": "${service}"}))
provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(
    endpoint="${origin}/v1/traces",
    headers={"x-project-key": "${key}"},
)))
trace.set_tracer_provider(provider)
pystrument.configure(tracer_provider=provider)  # function-call spans under every request span`;
}

/** The snippet text; `origin` is this server's URL, `framework` picks the instrumentation for zero-code. */
export function setupSnippet(kind: SetupKind, origin: string, key: string, framework = '', service = 'my-service'): string {
	switch (kind) {
		case 'zero-code':
			return [
				`pip install pystrument ${INSTRUMENTATION[framework] ?? 'opentelemetry-instrumentation-flask  # or -django, -fastapi'}`,
				`export OTEL_SERVICE_NAME=${service}`,
				'export OTEL_TRACES_EXPORTER=otlp OTEL_METRICS_EXPORTER=none OTEL_LOGS_EXPORTER=none',
				`export OTEL_EXPORTER_OTLP_ENDPOINT=${origin}`,
				'export OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf',
				`export OTEL_EXPORTER_OTLP_HEADERS=x-project-key=${key}`,
				'opentelemetry-instrument python app.py'
			].join('\n');
		case 'flask':
			return `# pip install pystrument opentelemetry-instrumentation-flask
from flask import Flask
from opentelemetry.instrumentation.flask import FlaskInstrumentor
${provider(origin, key, service)}

app = Flask(__name__)
FlaskInstrumentor().instrument_app(app)`;
		case 'django':
			return `# pip install pystrument opentelemetry-instrumentation-django
# wsgi.py (or asgi.py / manage.py), before the application is created:
from opentelemetry.instrumentation.django import DjangoInstrumentor
${provider(origin, key, service)}

DjangoInstrumentor().instrument()

from django.core.wsgi import get_wsgi_application
application = get_wsgi_application()`;
		case 'fastapi':
			return `# pip install pystrument opentelemetry-instrumentation-fastapi
from fastapi import FastAPI
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
${provider(origin, key, service)}

app = FastAPI()
FastAPIInstrumentor.instrument_app(app)`;
		case 'collector':
			return `# An OpenTelemetry Collector as gateway, with the repository's otel-collector.yaml:
PYSTRUMENT_ENDPOINT=${origin} \\
PYSTRUMENT_PROJECT_KEY=${key} \\
  otelcol-contrib --config otel-collector.yaml

# then point your apps at the Collector (OTLP gRPC :4317 or HTTP :4318):
export OTEL_EXPORTER_OTLP_ENDPOINT=http://<collector-host>:4318`;
	}
}
