"""A project with its own user model (accounts.Member) that adds the commerce app.

Member has a text key and soft delete but no `is_active`, names or join date, so each
behaviour of repositories.user_model degrades as far as it can. `make test` runs
tests/custom_user_project/ under these settings (`pytest --ds ...`).
"""

from __future__ import annotations

import os

from config.settings import *  # noqa: F403
from config.settings import DATABASES, DEBUG_TOOLBAR, TESTING

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "django_filters",
    "tests.custom_user_project.accounts",
    "domain",
    "repositories",
]
if TESTING:
    INSTALLED_APPS.append("zeal")  # N+1 detection, as in the main suite
if DEBUG_TOOLBAR:
    INSTALLED_APPS.append("debug_toolbar")  # config.settings added its middleware

ROOT_URLCONF = "tests.custom_user_project.urls"
AUTH_USER_MODEL = "accounts.Member"
AUTHENTICATION_BACKENDS = ["domain.auth.EmailBackend"]
SILENCED_SYSTEM_CHECKS = []

# Its own test database, so it never meets the main suite's.
_test_name = os.environ.get("TEST_DATABASE_NAME") or "test_repositories"
DATABASES["default"]["TEST"] = {"NAME": f"{_test_name}_custom_user"}
