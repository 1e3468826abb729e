"""Copied into the generated project as ``corpussite/asgi.py`` (``wagtail start`` writes only a WSGI module)."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "corpussite.settings.production")
application = get_asgi_application()
