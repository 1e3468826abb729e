"""Copied into the generated project's ``corpussite/settings/local.py`` (its production settings import it)."""

import os

from .base import DATABASES, STORAGES

SECRET_KEY = "corpus-wagtail-not-secret"
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
WAGTAILADMIN_BASE_URL = "http://127.0.0.1"
# Static files are not collected for the test: plain storage instead of the manifest's.
STORAGES["staticfiles"]["BACKEND"] = "django.contrib.staticfiles.storage.StaticFilesStorage"
DATABASES["default"]["NAME"] = os.environ["CORPUS_DB"]
MEDIA_ROOT = os.environ["CORPUS_MEDIA"]
