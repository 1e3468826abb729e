"""A Django project in one package for the e2e tests: settings, URLs, views, WSGI and ASGI entry points."""
